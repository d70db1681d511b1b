"""The dataset base: image records in memory, a transform pipeline, bad samples replaced.

A dataset subclass parses its annotation format into
:class:`~core.data.datasets.records.ImageRecord` objects (boxes in original image pixels) and
calls :meth:`DetDataset.set_records`, which keeps them in a columnar
:class:`~core.data.datasets.records.RecordIndex`. A parsed index is cached on disk
(:mod:`core.data.datasets.index_cache`): :meth:`DetDataset.restore_index` installs a cached
one and :meth:`DetDataset.save_index` writes it. Indexing returns a :class:`DetSample`
passed through the pipeline.

Keys: ``dataset[i]`` or ``dataset[(i, seed)]``. The sampler of
:func:`core.data.loader.build_dataloader` yields ``(index, seed)`` pairs so that random
augmentation of a sample is fixed by the sampler's seed and epoch (not by worker processes);
a plain ``int`` key uses the index as seed.

A sample whose image cannot be read is replaced by the next index (unless ``strict``) and
counted once in ``dataset.skipped`` of the main process: a loader worker process passes the
failure along in the replacing sample's ``meta`` (:data:`REPLACED_KEY`), and the runner
hands the batch's samples to :meth:`DetDataset.note_replaced`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from torch.utils.data import Dataset, get_worker_info

from core.data.datasets.image_size import (
    ExifMode,
    ImageSize,
    MismatchMode,
    check_modes,
    read_header,
    reconcile,
)
from core.data.datasets.index_cache import CachedIndex, Identity, IndexCache, examine
from core.data.datasets.records import ImageRecord, RecordIndex
from core.data.datasets.skips import LOGGER, SkipLog
from core.data.threads import single_threaded
from core.data.transforms.base import Pipeline, Prepare
from core.data.transforms.loading import EXIF_KEY, STRICT_KEY
from core.errors import DataError
from core.structures import DetSample

#: consecutive unreadable samples tolerated before giving up.
MAX_REPLACEMENTS = 10
#: ``sample.meta`` key: ``[(index, message)]`` of the samples this one replaced.
REPLACED_KEY = "replaced"


@attrs.frozen
class SizeCheck:
    """The outcome of checking an image's recorded size, before anything is counted.

    :ivar size: how to read the image; ``None``: leave it out.
    :ivar skip: ``(reason, message)`` when it is left out.
    :ivar warning: the message of boxes scaled to the file.
    """

    size: ImageSize | None
    skip: tuple[str, str] | None = None
    warning: str | None = None


def resolve_path(path: str, data_root: str) -> Path:
    """``path`` under ``data_root`` unless absolute; relative roots resolve against the cwd."""
    candidate = Path(path).expanduser()
    if data_root and not candidate.is_absolute():
        candidate = Path(data_root).expanduser() / candidate
    return candidate


class DetDataset(Dataset):
    """Base class of detection datasets (see the module docstring).

    :param pipeline: transforms applied to each sample.
    :param strict: raise :class:`DataError` on any bad input instead of skipping it.
    :param exif_orientation: ``"auto"``, ``"apply"`` or ``"ignore"``: when to turn an image
        by its EXIF orientation (see :mod:`core.data.datasets.image_size`).
    :param size_mismatch: ``"skip"`` or ``"rescale"`` an image whose file size disagrees
        with the recorded one.
    """

    classes: tuple[str, ...] = ()
    #: ``dataset[(index, seed)]`` is understood (the loader's sampler then passes seeds).
    accepts_sample_keys = True

    def __init__(self, pipeline: Sequence[Any] = (), strict: bool = False,
                 exif_orientation: ExifMode = "auto", size_mismatch: MismatchMode = "skip",
                 ) -> None:
        check_modes(exif_orientation, size_mismatch, type(self).__name__)
        self.pipeline = Pipeline(pipeline)
        self.strict = strict
        self.exif_orientation: ExifMode = exif_orientation
        self.size_mismatch: MismatchMode = size_mismatch
        self.records = RecordIndex.from_records([])
        self.label_to_cat_id: dict[int, int] = {}
        #: boxes that were fixed rather than dropped (``{"clipped_box": n}``).
        self.repaired: dict[str, int] = {}
        self._skips = SkipLog(type(self).__name__, strict)
        #: failures of the current ``dataset[key]`` call in a loader worker process
        self._failed: list[tuple[int, str]] = []
        #: identities of the image files examined while parsing (keyed in the index cache)
        self._watched: list[Identity] = []

    # --- loading -------------------------------------------------------------------------
    def set_records(self, records: Sequence[ImageRecord] | RecordIndex, source: str,
                    cached: Path | None = None) -> None:
        """Install parsed records (or a ready index; ``cached``: the cache file it came
        from); log what was skipped; refuse an empty result."""
        self._skips.summarize()
        if not len(records):
            raise DataError(f"{source}: no usable images (skipped: {self.skipped or 'nothing'})")
        index = records if isinstance(records, RecordIndex) else RecordIndex.from_records(records)
        self.records = index
        LOGGER.info("%s: %d images, %d boxes from %s%s", type(self).__name__, len(index),
                    index.num_boxes, source, "" if cached is None else f" (cached index {cached})")
        if self.repaired:
            LOGGER.info("%s: repaired %s", source, self.repaired)

    def restore_index(self, cache: IndexCache | None, source: str) -> bool:
        """Install the index cached in ``cache`` when there is one (``False`` otherwise)."""
        cached = None if cache is None else cache.load()
        if cached is None:
            return False
        self.classes = cached.classes
        self.label_to_cat_id = dict(cached.label_to_cat_id)
        self.repaired = dict(cached.repaired)
        self._skips.counts = Counter(cached.skipped)
        self.set_records(cached.index, source, cached=cache.path)  # type: ignore[union-attr]
        return True

    def save_index(self, cache: IndexCache | None) -> None:
        """Write the installed index to ``cache`` (``None``: caching is off)."""
        if cache is not None:
            cache.save(CachedIndex(self.records, self.classes, dict(self.label_to_cat_id),
                                   self.skipped, dict(self.repaired)), self._watched)

    def _image_exists(self, img_path: Path | str) -> bool:
        """Whether ``img_path`` is a file; its identity is kept for the index cache."""
        identity, is_file = examine(img_path)
        self._watched.append(identity)
        return is_file

    def _image_size(self, recorded: tuple[int, int] | None, img_path: Path,
                    where: str) -> ImageSize | None:
        """Check ``recorded`` (``(width, height)``, ``None`` if unknown) against the file's
        header; ``None`` (counted) when the image is to be left out."""
        return self._count_size_check(self._check_size(recorded, img_path, where))

    def _check_size(self, recorded: tuple[int, int] | None, img_path: Path,
                    where: str) -> SizeCheck:
        """:meth:`_image_size` without counting or logging anything."""
        try:
            header = read_header(img_path)
        except (OSError, ValueError) as exc:
            if recorded is None:
                return SizeCheck(None, skip=(
                    "bad_image", f"{where}: no recorded size and {img_path} is unreadable ({exc})"
                ))
            return SizeCheck(ImageSize(*recorded))  # decoding names the file when it is loaded
        size = reconcile(recorded, header, self.exif_orientation, self.size_mismatch)
        width, height, orientation = header
        found = f"{img_path} is {width}x{height}" + (
            f" with EXIF orientation {orientation}" if orientation != 1 else "")
        if size is None:
            assert recorded is not None
            return SizeCheck(None, skip=(
                "size_mismatch",
                f"{where}: recorded size {recorded[0]}x{recorded[1]} but {found} "
                f"(exif_orientation = {self.exif_orientation!r}; size_mismatch = 'rescale' "
                f"scales the boxes instead)",
            ))
        if size.scale is not None:
            assert recorded is not None
            return SizeCheck(size, warning=(
                f"{where}: recorded size {recorded[0]}x{recorded[1]} but {found}; boxes scaled "
                f"to {size.width}x{size.height}"))
        return SizeCheck(size)

    def _count_size_check(self, check: SizeCheck) -> ImageSize | None:
        """Count and log ``check``; its size."""
        if check.skip is not None:
            self._skips.skip(*check.skip)
            return None
        size = check.size
        assert size is not None
        if check.warning is not None:
            self.repaired["rescaled_boxes"] = self.repaired.get("rescaled_boxes", 0) + 1
            LOGGER.warning("%s", check.warning)
        if size.exif_transpose:
            self.repaired["exif_turned"] = self.repaired.get("exif_turned", 0) + 1
        return size

    @property
    def skipped(self) -> dict[str, int]:
        """What was left out, by reason (``{"degenerate_box": 2, "bad_image": 1}``)."""
        return self._skips.as_dict()

    @property
    def metainfo(self) -> dict[str, Any]:
        """``{"classes": ..., "label_to_cat_id": ...}``, what metrics need to know."""
        return {"classes": self.classes, "label_to_cat_id": dict(self.label_to_cat_id)}

    # --- access --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def raw_sample(self, index: int) -> DetSample:
        """Sample ``index`` before any transform: paths, shapes and original-pixel boxes."""
        record = self.records[index]
        shape = (record.height, record.width)
        return DetSample(
            img_id=record.img_id,
            img_path=record.img_path,
            ori_shape=shape,
            img_shape=shape,
            pad_shape=shape,
            gt=record.gt,
            ignore=record.ignore,
            meta={STRICT_KEY: self.strict, EXIF_KEY: record.exif_transpose},
        )

    def __getitem__(self, key: int | tuple[int, int]) -> DetSample | list[DetSample]:
        with single_threaded():
            return self._get(key)

    def _get(self, key: int | tuple[int, int]) -> DetSample | list[DetSample]:
        index, seed = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (int(key), key)
        if not 0 <= index < len(self):
            raise IndexError(f"{type(self).__name__}: index {index} out of range ({len(self)})")
        rng = np.random.default_rng(seed)
        last_error: DataError | None = None
        self._failed = []
        for _ in range(MAX_REPLACEMENTS):
            try:
                result = self.pipeline(self.raw_sample(index), rng, source=self)
            except DataError as exc:
                self._record_bad_sample(index, exc)
                last_error = exc
                index = (index + 1) % len(self)
            else:
                if self._failed:
                    first = result[0] if isinstance(result, list) else result
                    first.meta[REPLACED_KEY] = self._failed
                return result
        raise DataError(
            f"{type(self).__name__}: {MAX_REPLACEMENTS} consecutive samples failed; "
            f"last error: {last_error}"
        )

    def random_sample(self, rng: np.random.Generator, prepare: Prepare) -> DetSample:
        """A random sample prepared by ``prepare`` (for Mosaic/MixUp), bad ones replaced."""
        last_error: DataError | None = None
        for _ in range(MAX_REPLACEMENTS):
            index = int(rng.integers(len(self)))
            try:
                return prepare(self.raw_sample(index), rng)
            except DataError as exc:
                self._record_bad_sample(index, exc)
                last_error = exc
        raise DataError(
            f"{type(self).__name__}: {MAX_REPLACEMENTS} random samples failed; "
            f"last error: {last_error}"
        )

    def _record_bad_sample(self, index: int, exc: DataError) -> None:
        record = self.records[index]
        if self.strict:
            raise exc
        message = f"sample {index} (img_id={record.img_id}, {record.img_path}): {exc}"
        if get_worker_info() is None:  # the main process counts it itself
            self._skips.replaced("bad_image", index, message)
        else:
            self._failed.append((index, message))

    def note_replaced(self, samples: Sequence[DetSample]) -> None:
        """Count and log (once per sample) the failures that loader workers passed along."""
        for sample in samples:
            for index, message in sample.meta.pop(REPLACED_KEY, ()):
                self._skips.replaced("bad_image", index, message)
