"""Per-image annotation records, stored compactly for data loader workers.

A dataset keeps its records in a :class:`RecordStore`: every record pickled into one NumPy
byte buffer plus an offset array. Forked worker processes then share two large arrays
instead of touching (and so copying, through reference counts) one Python object per box
array per image, which matters for COCO-sized annotation files.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import attrs
import numpy as np
import torch

from core.structures import Instances


def _boxes(rows: Sequence[Sequence[float]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float32).reshape(-1, 4)


def _labels(values: Sequence[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).reshape(-1)


@attrs.define
class ImageRecord:
    """One image of the annotation file, boxes in original pixels.

    :ivar img_id: image id (the COCO id where there is one).
    :ivar img_path: path of the image file.
    :ivar height: image height from the annotations.
    :ivar width: image width from the annotations.
    :ivar boxes: ``(N, 4)`` float32 xyxy ground-truth boxes; ``labels``: ``(N,)`` int64.
    :ivar ignore_boxes: ``(M, 4)`` ignore regions (iscrowd / difficult); ``ignore_labels``.
    :ivar exif_transpose: decode the image turned by its EXIF orientation.
    """

    img_id: int
    img_path: str
    height: int
    width: int
    boxes: np.ndarray = attrs.field(converter=_boxes)
    labels: np.ndarray = attrs.field(converter=_labels)
    ignore_boxes: np.ndarray = attrs.field(converter=_boxes)
    ignore_labels: np.ndarray = attrs.field(converter=_labels)
    exif_transpose: bool = False

    @property
    def gt(self) -> Instances:
        """The ground truth as tensors (sharing the record's arrays)."""
        return Instances(boxes=torch.from_numpy(self.boxes), labels=torch.from_numpy(self.labels))

    @property
    def ignore(self) -> Instances:
        """The ignore regions as tensors (sharing the record's arrays)."""
        return Instances(
            boxes=torch.from_numpy(self.ignore_boxes), labels=torch.from_numpy(self.ignore_labels)
        )


class AnnotatedBox(NamedTuple):
    """One annotated object of an image.

    :ivar box: ``[x1, y1, x2, y2]`` in original image pixels.
    :ivar label: contiguous class label.
    :ivar ignore: an ignore region (COCO ``iscrowd``, VOC ``difficult``) rather than ground truth.
    """

    box: list[float]
    label: int
    ignore: bool


def record_from_boxes(
    img_id: int, img_path: str, height: int, width: int, objects: Sequence[AnnotatedBox],
    exif_transpose: bool = False,
) -> ImageRecord:
    """A record whose ignore objects become ignore regions and the others ground truth.

    Both keep the order of ``objects``.
    """
    gt = [obj for obj in objects if not obj.ignore]
    ignored = [obj for obj in objects if obj.ignore]
    return ImageRecord(
        img_id=img_id,
        img_path=img_path,
        height=height,
        width=width,
        boxes=[obj.box for obj in gt],
        labels=[obj.label for obj in gt],
        ignore_boxes=[obj.box for obj in ignored],
        ignore_labels=[obj.label for obj in ignored],
        exif_transpose=exif_transpose,
    )


class RecordStore(Sequence[ImageRecord]):
    """Records pickled into one byte buffer; indexing unpickles a fresh copy."""

    def __init__(self, records: Sequence[ImageRecord]) -> None:
        blobs = [pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL) for r in records]
        self._ends = np.cumsum([len(b) for b in blobs], dtype=np.int64)
        self._buffer = np.frombuffer(b"".join(blobs), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, index: int) -> ImageRecord:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(f"record {index} out of range ({len(self)})")
        index %= len(self)
        start = int(self._ends[index - 1]) if index else 0
        return pickle.loads(self._buffer[start : int(self._ends[index])].tobytes())

    def __iter__(self) -> Iterator[ImageRecord]:
        return (self[i] for i in range(len(self)))
