"""YOLO-format dataset (ultralytics layout): a dataset YAML, image folders, one label file
per image with ``class cx cy w h`` lines normalised to 0..1, or, for instance segmentation,
``class x1 y1 x2 y2 ... xk yk`` lines (a normalised polygon of ``k >= 3`` points).

Config::

    [train_dataloader.dataset]
    type = "YoloDataset"
    data_yaml = "data/raccoon_yolo/raccoon.yaml"
    split = "train"                 # a key of the YAML: train, val or test

See :mod:`core.data.datasets.yolo_yaml` for the YAML and where label files are found.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import numpy as np

from core.data.datasets.base import DetDataset
from core.data.datasets.coco import check_box
from core.data.datasets.image_size import ExifMode, ImageSize
from core.data.datasets.index_cache import IndexCache
from core.data.datasets.records import AnnotatedBox, ImageRecord, record_from_boxes
from core.data.datasets.yolo_labels import LABEL_SUFFIX, LabelFinder
from core.data.datasets.yolo_yaml import class_names, label_path, read_yaml, split_images
from core.errors import DataError
from core.registry import component

#: columns of a label line: class, centre x, centre y, width, height.
COLUMNS = 5
#: fewest columns of a polygon line: class and three points.
POLYGON_COLUMNS = 7
#: box edges this far (normalised) past the image border are rounding of the written
#: coordinates and are clamped silently; further out they are clipped and counted.
ROUNDING = 1e-5


class LabelLine(NamedTuple):
    """One valid label line: class id and the normalised ``(cx, cy, w, h)`` box.

    :ivar polygon: of a polygon line, its ``(K, 2)`` float64 normalised points (the box is
        their bounds); ``None`` for a box line.
    """

    label: int
    box: tuple[float, float, float, float]
    polygon: np.ndarray | None = None


def parse_label_line(text: str, num_classes: int) -> LabelLine | tuple[str, str]:
    """A :class:`LabelLine`, or ``(reason, message)`` when the line is bad.

    Reasons: ``malformed_box`` (neither 5 numbers nor a class and an even number of at least
    6), ``unknown_class`` (class id not an integer in ``0..num_classes-1``), ``outside_box``
    (a value of a box outside 0..1), ``bad_mask`` (a polygon point outside 0..1),
    ``degenerate_box`` (zero width or height).
    """
    fields = text.split()
    if len(fields) >= POLYGON_COLUMNS and len(fields) % 2:
        return _parse_polygon_line(text, fields, num_classes)
    if len(fields) != COLUMNS:
        return "malformed_box", (f"expected {COLUMNS} columns 'class cx cy w h' or a polygon "
                                 f"'class x1 y1 ... xk yk' (k >= 3), got {len(fields)}")
    try:
        values = [float(f) for f in fields]
    except ValueError:
        return "malformed_box", f"non-numeric value in {text.strip()!r}"
    if not all(math.isfinite(v) for v in values):
        return "malformed_box", f"non-finite value in {text.strip()!r}"
    cls, cx, cy, w, h = values
    if cls != int(cls) or not 0 <= int(cls) < num_classes:
        return "unknown_class", f"class id {fields[0]} is not one of 0..{num_classes - 1}"
    if not all(0.0 <= v <= 1.0 for v in (cx, cy, w, h)):
        return "outside_box", f"box {fields[1:]} has values outside 0..1 (not normalised?)"
    if w <= 0.0 or h <= 0.0:
        return "degenerate_box", f"box {fields[1:]} has zero width or height"
    return LabelLine(int(cls), (cx, cy, w, h))


def _parse_polygon_line(text: str, fields: list[str],
                        num_classes: int) -> LabelLine | tuple[str, str]:
    try:
        values = np.asarray([float(f) for f in fields], dtype=np.float64)
    except ValueError:
        return "malformed_box", f"non-numeric value in {text.strip()!r}"
    if not np.isfinite(values).all():
        return "malformed_box", f"non-finite value in {text.strip()!r}"
    cls, points = values[0], values[1:].reshape(-1, 2)
    if cls != int(cls) or not 0 <= int(cls) < num_classes:
        return "unknown_class", f"class id {fields[0]} is not one of 0..{num_classes - 1}"
    outside = np.flatnonzero(((points < 0.0) | (points > 1.0)).any(axis=1))
    if len(outside):
        first = outside[0]
        return "bad_mask", (f"polygon point {first + 1} {fields[1 + 2 * first:3 + 2 * first]} "
                            f"has coordinates outside 0..1 (not normalised?)")
    (x1, y1), (x2, y2) = points.min(axis=0), points.max(axis=0)
    if x2 <= x1 or y2 <= y1:
        return "degenerate_box", f"polygon of {len(points)} points has zero width or height"
    box = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    return LabelLine(int(cls), tuple(float(v) for v in box), points)  # type: ignore[arg-type]


def to_pixels(box: tuple[float, float, float, float], width: int, height: int) -> list[float]:
    """Normalised ``(cx, cy, w, h)`` -> absolute ``[x1, y1, x2, y2]`` in a ``width x height``
    image; edges within :data:`ROUNDING` past the border are put on it."""
    cx, cy, w, h = box

    def edge(value: float, size: int) -> float:
        if -ROUNDING <= value < 0.0 or 1.0 < value <= 1.0 + ROUNDING:
            value = min(max(value, 0.0), 1.0)
        return value * size

    return [edge(cx - w / 2, width), edge(cy - h / 2, height),
            edge(cx + w / 2, width), edge(cy + h / 2, height)]


class LabelledImage(NamedTuple):
    """An image of the split with its size and valid label lines (with line numbers)."""

    img_id: int
    image: Path
    labels_file: Path
    lines: list[tuple[int, LabelLine]]
    size: ImageSize


def label_files(images: list[Path]) -> list[Path]:
    """Every ``.txt`` file of the label folders of ``images`` (sorted): what the labels of a
    split are read from, whatever their case."""
    files: list[Path] = []
    for folder in sorted({label_path(image).parent for image in images}):
        try:
            names = [entry.name for entry in os.scandir(folder) if entry.is_file()]
        except OSError:
            continue
        files.extend(folder / name for name in sorted(names)
                     if name.lower().endswith(LABEL_SUFFIX))
    return files


class YoloDataset(DetDataset):
    """Images and boxes of a YOLO-format (ultralytics) dataset.

    Classes come from the YAML's ``names``; label ``i`` is class id ``i`` and
    ``label_to_cat_id`` is ``label + 1``. An image whose label file is missing or empty is a
    background image (no boxes). Bad label lines (wrong column count, non-numbers, values
    outside 0..1, unknown class id, zero-size box) are skipped with the file and line number
    and counted in ``dataset.skipped`` (``malformed_box``, ``outside_box``, ``unknown_class``,
    ``degenerate_box``), or raise :class:`~core.errors.DataError` with ``strict``; boxes
    reaching past the image border are clipped (``clipped_box`` in ``dataset.repaired``, the
    file named once). A label file whose name differs from the image's only in case is read,
    named and counted (``label_case`` in ``dataset.repaired``; an error with ``strict``);
    when several could be it the image is left out (``ambiguous_label``). Label files without
    any image are named and counted (``label_without_image``). Image sizes are read from the
    file headers.

    Polygon lines (ultralytics segmentation labels) give the polygon as the instance's mask
    and its bounds as the box; a polygon point outside 0..1 skips the line (``bad_mask``). With
    masks, a box line (no polygon) is skipped too (``bad_mask``); without, polygon lines are
    read as their bounding boxes.

    :param data_yaml: the dataset YAML (relative to the working directory unless absolute).
    :param split: the YAML key naming the images: ``"train"``, ``"val"`` or ``"test"``.
    :param filter_empty_gt: leave out images without any box (background images).
    :param strict: raise :class:`DataError` on the first bad item instead of skipping it.
    :param exif_orientation: ``"apply"`` (default) turns images by their EXIF orientation:
        labels refer to the turned image, as ultralytics reads them; ``"auto"`` and
        ``"ignore"`` use the stored pixels (label files record no size to decide by).
    :param pipeline: transforms applied to every sample.
    :param check_images: check that every image file exists before reading its header
        (label files record no size, so headers are read either way); ``False`` leaves the
        image files out of the index cache's key (a cached index then trusts them) and counts
        a missing image as ``bad_image``.
    :param cache_index: reuse the index cached by an earlier build with the same YAML, image
        list, label files and options (and, with ``check_images``, unchanged image files),
        else save it (see :mod:`core.data.datasets.index_cache`).
    :param with_mask: read the polygons of polygon lines as instance masks; ``None``
        (default): when any label line of the split is a polygon.
    """

    def __init__(
        self,
        data_yaml: str,
        split: str = "train",
        filter_empty_gt: bool = False,
        strict: bool = False,
        exif_orientation: ExifMode = "apply",
        pipeline: Annotated[list[Any], component("transform")] = [],  # noqa: B006
        check_images: bool = True,
        cache_index: bool = True,
        with_mask: bool | None = None,
    ) -> None:
        super().__init__(pipeline, strict, exif_orientation)
        source = Path(data_yaml).expanduser()
        content = read_yaml(source)
        self.classes = class_names(content, source)
        self.label_to_cat_id = {label: label + 1 for label in range(len(self.classes))}
        self.filter_empty_gt = filter_empty_gt
        self.check_images = check_images
        self._skips.source = f"YoloDataset({source}, {split})"
        images = split_images(content, split, source)
        cache = IndexCache(type(self).__name__, {
            "data_yaml": [str(source), os.path.abspath(source)], "split": split,
            "filter_empty_gt": filter_empty_gt, "strict": strict,
            "exif_orientation": exif_orientation, "check_images": check_images,
            "images": [str(image) for image in images], "with_mask": with_mask,
        }, [source, *label_files(images)]) if cache_index else None
        if self.restore_index(cache, f"{source} [{split}]"):
            self.with_mask = self.records.with_mask
            return
        finder = LabelFinder(images)
        labelled = [item for img_id, image in enumerate(images)
                    if (item := self._labelled_image(img_id, image, finder)) is not None]
        self.with_mask = any(line.polygon is not None for item in labelled
                             for _, line in item.lines) if with_mask is None else with_mask
        records = [record for item in labelled if (record := self._record(item)) is not None]
        for label, image_dir in finder.without_image():
            self._skips.skip("label_without_image", f"{label}: no image {image_dir / label.stem}"
                                                    ".* for this label file")
        self.set_records(records, f"{source} [{split}]")
        self.save_index(cache)

    def _label_file(self, image: Path, finder: LabelFinder) -> Path | None:
        """The label file of ``image`` (which may not exist); ``None`` (counted) when it is
        ambiguous."""
        match = finder.match(image)
        if match.path is None:
            self._skips.skip("ambiguous_label", f"{image}: {match.problem}")
        elif match.problem:
            if self.strict:
                raise DataError(f"{image}: {match.problem} (strict = true)")
            self.repaired["label_case"] = self.repaired.get("label_case", 0) + 1
            self._skips.note_repair("label_case", str(image),
                                    f"{image}: {match.problem}; read as its label file")
        return match.path

    def _read_labels(self, path: Path) -> list[tuple[int, LabelLine]] | None:
        """Valid lines of a label file with their line numbers (``[]`` if missing); ``None``
        if unreadable."""
        if not path.is_file():
            return []
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            self._skips.skip("bad_label", f"{path}: unreadable label file ({exc})")
            return None
        labels = []
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            parsed = parse_label_line(text, len(self.classes))
            if isinstance(parsed, LabelLine):
                labels.append((number, parsed))
            else:
                reason, message = parsed
                self._skips.skip(reason, f"{path}:{number}: {message}")
        return labels

    def _labelled_image(self, img_id: int, image: Path,
                        finder: LabelFinder) -> LabelledImage | None:
        """The image's size and valid label lines; ``None`` (counted) when it is left out."""
        if self.check_images and not self._image_exists(image):
            self._skips.skip("missing_image", f"image file {image} not found")
            return None
        labels_file = self._label_file(image, finder)
        if labels_file is None:
            return None
        lines = self._read_labels(labels_file)
        if lines is None:
            return None
        size = self._image_size(None, image, str(labels_file))
        if size is None:
            return None
        return LabelledImage(img_id, image, labels_file, lines, size)

    def _record(self, item: LabelledImage) -> ImageRecord | None:
        """The record of a labelled image; ``None`` (counted) when it is left out."""
        image, labels_file, size = item.image, item.labels_file, item.size
        objects = []
        for number, line in item.lines:
            where = f"{labels_file}:{number}"
            if self.with_mask and line.polygon is None:
                self._skips.skip("bad_mask", f"{where}: a box line without polygon in a "
                                             "dataset with masks")
                continue
            if line.polygon is None:
                pixels = to_pixels(line.box, size.width, size.height)
                mask = None
            else:
                polygon = (line.polygon * (size.width, size.height)).astype(np.float32)
                pixels = [*polygon.min(axis=0).tolist(), *polygon.max(axis=0).tolist()]
                mask = [polygon] if self.with_mask else None
            box = check_box(pixels, size.width, size.height, where, self._skips,
                            self.repaired, key=str(labels_file))
            if box is not None:
                objects.append(AnnotatedBox(box, line.label, ignore=False, mask=mask))
        record = record_from_boxes(item.img_id, str(image), size.height, size.width, objects,
                                   size.exif_transpose, with_mask=self.with_mask)
        if self.filter_empty_gt and not len(record.boxes):
            self._skips.omit("empty_gt", f"{image}: no boxes (filter_empty_gt = true)")
            return None
        return record
