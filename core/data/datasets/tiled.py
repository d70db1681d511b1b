"""Training on tiles of large images: a dataset that cuts a tile from each sample of another.

::

    [train_dataloader.dataset]
    type = "TiledDataset"
    size = 512                  # or [h, w]: the tile in image pixels
    object_ratio = 0.7          # share of tiles placed around an object (the rest at random)
    min_area_ratio = 0.1        # a box cut by the tile edge is kept from this share of its area
    tiles_per_image = 4         # tiles of each image per epoch
    dataset = {type = "SmallObjectsDataset", split = "train", pipeline = [{type = "LoadImage"}]}
    pipeline = [{type = "Mosaic", img_scale = [512, 512]}, {type = "RandomFlip"}, ...]

The wrapped dataset loads the full image and its boxes (its pipeline only loads: no resize);
each tile is a new sample of the tile's pixels, with the boxes of the image clipped to the
tile and those keeping less than ``min_area_ratio`` of their area dropped (the rule of SAHI's
annotation slicing), then passed through this dataset's ``pipeline``. An object tile contains
a box of the image chosen at random (placed at random around it); a random tile lies anywhere
in the image; an image without boxes gets random tiles. Mosaic and MixUp draw their other
samples as tiles too (:meth:`TiledDataset.random_sample`). ``sample.meta["tile"]`` is the
window ``(x1, y1, x2, y2)`` and ``sample.meta["tile_kind"]`` ``"object"`` or ``"random"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from torch.utils.data import Dataset

from core.data.slicing.windows import Window, crop_instances
from core.data.transforms.base import Pipeline, Prepare
from core.errors import DataError
from core.registry import component
from core.structures import DetSample

TILE_KEY = "tile"
TILE_KIND_KEY = "tile_kind"
#: a seed drawn for the wrapped dataset's sample from the tile's generator
SEED_RANGE = 2**31


def _axis_start(rng: np.random.Generator, length: int, size: int,
                span: tuple[float, float] | None) -> int:
    """Start of a tile of ``size`` along an axis of ``length``: anywhere, or (``span``) so
    that the tile holds ``span = (lo, hi)``, centred on it when it is larger than the tile."""
    last = max(length - size, 0)
    if span is None:
        return int(rng.integers(0, last + 1))
    low, high = max(0, math.ceil(span[1]) - size), min(math.floor(span[0]), last)
    if low > high:
        return min(max(round((span[0] + span[1]) / 2 - size / 2), 0), last)
    return int(rng.integers(low, high + 1))


class TiledDataset(Dataset):
    """Tiles of the samples of ``dataset`` (see the module docstring).

    :param dataset: the dataset of full images; its pipeline loads them and nothing more.
    :param size: ``(h, w)`` of a tile (or one side); smaller along an axis the image is
        shorter than.
    :param object_ratio: probability of a tile placed around an object.
    :param min_area_ratio: a cut box is kept when this share of its area lies in the tile.
    :param tiles_per_image: samples per image and epoch (the dataset's length is the
        wrapped one's times this).
    :param pipeline: transforms applied to each tile.
    """

    #: ``dataset[(index, seed)]`` is understood (the loader's sampler then passes seeds).
    accepts_sample_keys = True

    def __init__(
        self,
        dataset: Annotated[Any, component("dataset")],
        size: int | tuple[int, int] = 512,
        object_ratio: float = 0.5,
        min_area_ratio: float = 0.1,
        tiles_per_image: int = 1,
        pipeline: Annotated[list[Any], component("transform")] = [],  # noqa: B006
    ) -> None:
        sides = (size, size) if isinstance(size, int) else tuple(size)
        if len(sides) != 2 or min(sides) < 1:
            raise ValueError(f"size must be positive, one side or (h, w); got {size!r}")
        if not 0.0 <= object_ratio <= 1.0 or not 0.0 <= min_area_ratio <= 1.0:
            raise ValueError("object_ratio and min_area_ratio must lie in [0, 1]")
        if tiles_per_image < 1:
            raise ValueError(f"tiles_per_image must be >= 1, got {tiles_per_image}")
        self.dataset = dataset
        self.size: tuple[int, int] = (int(sides[0]), int(sides[1]))
        self.object_ratio = object_ratio
        self.min_area_ratio = min_area_ratio
        self.tiles_per_image = tiles_per_image
        self.pipeline = Pipeline(pipeline)

    @property
    def classes(self) -> tuple[str, ...]:
        """The wrapped dataset's class names."""
        return tuple(self.dataset.classes)

    @property
    def metainfo(self) -> dict[str, Any]:
        """The wrapped dataset's ``metainfo``."""
        return dict(self.dataset.metainfo)

    @property
    def skipped(self) -> dict[str, int]:
        """What the wrapped dataset left out."""
        return dict(getattr(self.dataset, "skipped", {}))

    def note_replaced(self, samples: Sequence[DetSample]) -> None:
        """Passed to the wrapped dataset (it counts its unreadable images)."""
        note = getattr(self.dataset, "note_replaced", None)
        if note is not None:
            note(samples)

    def __len__(self) -> int:
        return len(self.dataset) * self.tiles_per_image

    def choose_window(self, sample: DetSample, rng: np.random.Generator) -> tuple[Window, str]:
        """A tile window of a loaded sample and its kind, ``"object"`` or ``"random"``."""
        height, width = sample.ori_shape
        boxes = sample.gt.boxes
        spans: tuple[Any, Any] = (None, None)
        kind = "random"
        if len(boxes) and rng.random() < self.object_ratio:
            box = boxes[int(rng.integers(len(boxes)))].tolist()
            spans, kind = ((box[1], box[3]), (box[0], box[2])), "object"
        y = _axis_start(rng, height, self.size[0], spans[0])
        x = _axis_start(rng, width, self.size[1], spans[1])
        return (x, y, min(x + self.size[1], width), min(y + self.size[0], height)), kind

    def cut(self, sample: DetSample, rng: np.random.Generator) -> DetSample:
        """A tile of a loaded, unresized sample as a sample of its own."""
        if sample.image is None or tuple(sample.img_shape) != tuple(sample.ori_shape):
            raise DataError(f"TiledDataset: sample img_id={sample.img_id} comes unloaded or "
                            "resized; the wrapped dataset's pipeline must only load images")
        window, kind = self.choose_window(sample, rng)
        x1, y1, x2, y2 = window
        gt, _ = crop_instances(sample.gt, window, self.min_area_ratio)
        ignore, _ = crop_instances(sample.ignore, window, 0.0)
        shape = (y2 - y1, x2 - x1)
        return DetSample(img_id=sample.img_id, img_path=sample.img_path, ori_shape=shape,
                         img_shape=shape, pad_shape=shape,
                         image=sample.image[:, y1:y2, x1:x2].contiguous(), gt=gt,
                         ignore=ignore,
                         meta={**sample.meta, TILE_KEY: window, TILE_KIND_KEY: kind})

    def _loaded(self, index: int, rng: np.random.Generator) -> DetSample:
        loaded = self.dataset[(index, int(rng.integers(SEED_RANGE)))]
        if isinstance(loaded, list):
            raise DataError("TiledDataset: the wrapped dataset's pipeline returns several "
                            "views; it must only load images")
        return loaded

    def __getitem__(self, key: int | tuple[int, int]) -> DetSample | list[DetSample]:
        index, seed = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (int(key), key)
        if not 0 <= index < len(self):
            raise IndexError(f"TiledDataset: index {index} out of range ({len(self)})")
        rng = np.random.default_rng(seed)
        tile = self.cut(self._loaded(index // self.tiles_per_image, rng), rng)
        return self.pipeline(tile, rng, source=self)

    def random_sample(self, rng: np.random.Generator, prepare: Prepare) -> DetSample:
        """A tile of a random image, prepared by ``prepare`` (for Mosaic/MixUp)."""
        index = int(rng.integers(len(self.dataset)))
        return prepare(self.cut(self._loaded(index, rng), rng), rng)
