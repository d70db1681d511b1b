"""Built-in plugin registering the datasets and transforms of :mod:`core.data`."""

from __future__ import annotations

from core import impl
from core.data.datasets.coco import CocoDataset
from core.data.datasets.shapes import ShapesDataset
from core.data.datasets.small_objects import SmallObjectsDataset
from core.data.datasets.tiled import TiledDataset
from core.data.datasets.voc import VocDataset
from core.data.datasets.yolo import YoloDataset
from core.data.transforms.affine import RandomAffine
from core.data.transforms.geometric import Pad, RandomCrop, RandomFlip, RandomResize, Resize
from core.data.transforms.loading import LoadImage
from core.data.transforms.mix import MixUp, Mosaic
from core.data.transforms.photometric import Normalize, PhotoMetricDistortion
from core.data.transforms.tta import TestTimeAug
from core.hookspecs import Register
from core.registry import register_each


@impl
def register_datasets(register: Register) -> None:
    """COCO JSON, Pascal VOC XML, YOLO text labels, the generated shapes and small-objects
    sets, and tiles of another dataset."""
    register_each(register, CocoDataset, VocDataset, YoloDataset, ShapesDataset,
                  SmallObjectsDataset, TiledDataset)


@impl
def register_transforms(register: Register) -> None:
    """Loading, geometric, photometric, mixing and test-time transforms."""
    register_each(register, LoadImage, Resize, RandomResize, RandomFlip, RandomCrop, Pad,
                  RandomAffine, PhotoMetricDistortion, Normalize, Mosaic, MixUp, TestTimeAug)
