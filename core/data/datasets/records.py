"""Per-image annotation records, stored compactly for data loader workers.

A dataset keeps its records in a :class:`RecordIndex`: a dozen NumPy arrays (image columns,
all boxes stacked, offsets). Forked worker processes then share a few large arrays instead
of touching (and so copying, through reference counts) Python objects per image, which
matters for COCO-sized annotation files; the arrays are also what the index cache stores
(:mod:`core.data.datasets.index_cache`). Instance masks, where a dataset has them, are three
more arrays per instance set (:class:`~core.data.datasets.mask_columns.MaskColumns`); a
dataset without masks stores none of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import attrs
import numpy as np
import torch

from core.data.datasets.mask_columns import InstancePolygons, MaskColumns
from core.masks import PolygonMasks
from core.structures import Instances


def _boxes(rows: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    return np.asarray(rows, dtype=np.float32).reshape(-1, 4)


def _labels(values: Sequence[int] | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).reshape(-1)


def _polygon_masks(masks: list[InstancePolygons] | None,
                   shape: tuple[int, int]) -> PolygonMasks | None:
    return None if masks is None else PolygonMasks(masks, shape)


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
    :ivar masks: ``None`` (no masks), else per box its polygons (``(K, 2)`` float32 arrays in
        original pixels, none for an instance without a mask); ``ignore_masks`` likewise per
        ignore region.
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
    masks: list[InstancePolygons] | None = None
    ignore_masks: list[InstancePolygons] | None = None

    @property
    def gt(self) -> Instances:
        """The ground truth as tensors (sharing the record's arrays), with
        :class:`~core.masks.PolygonMasks` of frame ``(height, width)`` when masks exist."""
        return Instances(boxes=torch.from_numpy(self.boxes), labels=torch.from_numpy(self.labels),
                         masks=_polygon_masks(self.masks, (self.height, self.width)))

    @property
    def ignore(self) -> Instances:
        """The ignore regions as tensors (sharing the record's arrays), masks as in
        :attr:`gt`."""
        return Instances(
            boxes=torch.from_numpy(self.ignore_boxes), labels=torch.from_numpy(self.ignore_labels),
            masks=_polygon_masks(self.ignore_masks, (self.height, self.width)),
        )


class AnnotatedBox(NamedTuple):
    """One annotated object of an image.

    :ivar box: ``[x1, y1, x2, y2]`` in original image pixels.
    :ivar label: contiguous class label.
    :ivar ignore: an ignore region (COCO ``iscrowd``, VOC ``difficult``) rather than ground truth.
    :ivar mask: the object's polygons (``(K, 2)`` float32 pixels), ``None`` without masks.
    """

    box: list[float]
    label: int
    ignore: bool
    mask: InstancePolygons | None = None


def record_from_boxes(
    img_id: int, img_path: str, height: int, width: int, objects: Sequence[AnnotatedBox],
    exif_transpose: bool = False, with_mask: bool = False,
) -> ImageRecord:
    """A record whose ignore objects become ignore regions and the others ground truth.

    Both keep the order of ``objects``. With ``with_mask`` the record holds the objects'
    polygons (an object whose ``mask`` is ``None`` gets none).
    """
    gt = [obj for obj in objects if not obj.ignore]
    ignored = [obj for obj in objects if obj.ignore]

    def masks(group: list[AnnotatedBox]) -> list[InstancePolygons] | None:
        return [obj.mask or [] for obj in group] if with_mask else None

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
        masks=masks(gt),
        ignore_masks=masks(ignored),
    )


def _span(ends: np.ndarray, index: int) -> slice:
    return slice(int(ends[index - 1]) if index else 0, int(ends[index]))


def _ends(image_of_row: np.ndarray, num_images: int) -> np.ndarray:
    return np.cumsum(np.bincount(image_of_row, minlength=num_images), dtype=np.int64)


class RecordIndex(Sequence[ImageRecord]):
    """The records of a dataset as columns of NumPy arrays.

    Image ``i`` has ``img_ids[i]``, ``heights[i]``, ``widths[i]``, ``exif_transpose[i]``,
    the path ``path_bytes[path_ends[i-1]:path_ends[i]]`` (UTF-8) and the boxes
    ``boxes[box_ends[i-1]:box_ends[i]]`` with their ``labels`` (ignore regions likewise in
    ``ignore_boxes``/``ignore_labels`` up to ``ignore_ends``; ``ends[-1]`` reads as 0).
    ``index[i]`` builds an :class:`ImageRecord` of fresh copies.

    :param img_ids: ``(N,)`` int64. :param heights: ``(N,)`` int32. :param widths: ``(N,)``
        int32. :param exif_transpose: ``(N,)`` bool.
    :param path_bytes: ``(P,)`` uint8, the paths one after the other; ``path_ends``: ``(N,)``
        int64.
    :param box_ends: ``(N,)`` int64; ``boxes``: ``(M, 4)`` float32 xyxy; ``labels``: ``(M,)``
        int64.
    :param ignore_ends: ``(N,)`` int64; ``ignore_boxes``: ``(K, 4)`` float32;
        ``ignore_labels``: ``(K,)`` int64.
    :param mask_part_ends: with masks (all six given, or none): the
        :class:`~core.data.datasets.mask_columns.MaskColumns` of the ``M`` boxes,
        ``mask_part_ends`` ``(M,)`` int64, ``mask_vertex_ends`` ``(P,)`` int64, ``mask_points``
        ``(V, 2)`` float32; ``ignore_mask_*`` likewise of the ``K`` ignore regions.
    """

    #: the arrays and their dtypes, in constructor order.
    FIELDS: tuple[tuple[str, type], ...] = (
        ("img_ids", np.int64), ("heights", np.int32), ("widths", np.int32),
        ("exif_transpose", np.bool_), ("path_bytes", np.uint8), ("path_ends", np.int64),
        ("box_ends", np.int64), ("boxes", np.float32), ("labels", np.int64),
        ("ignore_ends", np.int64), ("ignore_boxes", np.float32), ("ignore_labels", np.int64),
    )  # fmt: skip
    #: the mask arrays (present together, or not at all) and their dtypes.
    MASK_FIELDS: tuple[tuple[str, type], ...] = (
        ("mask_part_ends", np.int64), ("mask_vertex_ends", np.int64),
        ("mask_points", np.float32), ("ignore_mask_part_ends", np.int64),
        ("ignore_mask_vertex_ends", np.int64), ("ignore_mask_points", np.float32),
    )  # fmt: skip
    img_ids: np.ndarray
    heights: np.ndarray
    widths: np.ndarray
    exif_transpose: np.ndarray
    path_bytes: np.ndarray
    path_ends: np.ndarray
    box_ends: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    ignore_ends: np.ndarray
    ignore_boxes: np.ndarray
    ignore_labels: np.ndarray
    #: the polygons of the boxes and of the ignore regions (``None``: no masks).
    masks: MaskColumns | None
    ignore_masks: MaskColumns | None

    def __init__(self, img_ids: np.ndarray, heights: np.ndarray, widths: np.ndarray,
                 exif_transpose: np.ndarray, path_bytes: np.ndarray, path_ends: np.ndarray,
                 box_ends: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
                 ignore_ends: np.ndarray, ignore_boxes: np.ndarray,
                 ignore_labels: np.ndarray, mask_part_ends: np.ndarray | None = None,
                 mask_vertex_ends: np.ndarray | None = None,
                 mask_points: np.ndarray | None = None,
                 ignore_mask_part_ends: np.ndarray | None = None,
                 ignore_mask_vertex_ends: np.ndarray | None = None,
                 ignore_mask_points: np.ndarray | None = None) -> None:
        values = (img_ids, heights, widths, exif_transpose, path_bytes, path_ends, box_ends,
                  boxes, labels, ignore_ends, ignore_boxes, ignore_labels)
        for (name, dtype), value in zip(self.FIELDS, values, strict=True):
            array: np.ndarray = np.ascontiguousarray(value, dtype=dtype)
            setattr(self, name, array.reshape(-1, 4) if name.endswith("boxes") else array)
        mask_values = (mask_part_ends, mask_vertex_ends, mask_points, ignore_mask_part_ends,
                       ignore_mask_vertex_ends, ignore_mask_points)
        given = [value is not None for value in mask_values]
        if any(given) and not all(given):
            raise ValueError("RecordIndex: give all six mask arrays or none")
        self.masks = self.ignore_masks = None
        if all(given):
            arrays: list[np.ndarray] = [
                np.ascontiguousarray(value, dtype=dtype)
                for value, (_, dtype) in zip(mask_values, self.MASK_FIELDS, strict=True)]
            self.masks = MaskColumns(arrays[0], arrays[1], arrays[2].reshape(-1, 2))
            self.ignore_masks = MaskColumns(arrays[3], arrays[4], arrays[5].reshape(-1, 2))
        self._check()

    @property
    def with_mask(self) -> bool:
        """Whether the records hold instance masks."""
        return self.masks is not None

    def _check(self) -> None:
        n = len(self.img_ids)
        for name in ("heights", "widths", "exif_transpose", "path_ends", "box_ends",
                     "ignore_ends"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"RecordIndex: {name} has {len(getattr(self, name))} rows, "
                                 f"img_ids {n}")
        for ends, rows, other in ((self.path_ends, self.path_bytes, None),
                                  (self.box_ends, self.boxes, self.labels),
                                  (self.ignore_ends, self.ignore_boxes, self.ignore_labels)):
            last = int(ends[-1]) if n else 0
            if last != len(rows) or (other is not None and len(other) != len(rows)):
                raise ValueError(f"RecordIndex: ends reach {last}, arrays have {len(rows)} rows")
        if self.masks is not None and self.ignore_masks is not None:
            self.masks.check(len(self.boxes), "box")
            self.ignore_masks.check(len(self.ignore_boxes), "ignore")

    @classmethod
    def from_columns(cls, img_ids: np.ndarray, heights: np.ndarray, widths: np.ndarray,
                     paths: Sequence[str], exif_transpose: np.ndarray, box_image: np.ndarray,
                     boxes: np.ndarray, labels: np.ndarray, ignore_image: np.ndarray,
                     ignore_boxes: np.ndarray, ignore_labels: np.ndarray,
                     masks: Sequence[InstancePolygons] | None = None,
                     ignore_masks: Sequence[InstancePolygons] | None = None) -> RecordIndex:
        """An index from per-image columns (``N`` images) and per-box rows.

        :param box_image: ``(M,)`` the image (``0..N-1``) of each row of ``boxes`` ``(M, 4)``
            and ``labels`` ``(M,)``; rows of one image keep their order.
        :param ignore_image: ``(K,)`` likewise for ``ignore_boxes`` and ``ignore_labels``.
        :param masks: with masks (``masks`` and ``ignore_masks`` together), the polygons of
            each row of ``boxes`` (``M`` lists of ``(K, 2)`` arrays); ``ignore_masks`` of each
            row of ``ignore_boxes``.
        """
        if (masks is None) != (ignore_masks is None):
            raise ValueError("RecordIndex: give masks and ignore_masks together")
        num = len(img_ids)
        encoded = [path.encode("utf-8", "surrogateescape") for path in paths]
        path_ends = np.cumsum([len(b) for b in encoded], dtype=np.int64)
        order = np.argsort(box_image, kind="stable")
        ignore_order = np.argsort(ignore_image, kind="stable")
        mask_arrays: dict[str, np.ndarray] = {}
        if masks is not None and ignore_masks is not None:
            for prefix, rows, row_order in (("", masks, order),
                                            ("ignore_", ignore_masks, ignore_order)):
                packed = MaskColumns.pack([rows[int(row)] for row in row_order])
                mask_arrays.update(packed.named(prefix))
        return cls(
            img_ids, heights, widths, exif_transpose,
            np.frombuffer(b"".join(encoded), dtype=np.uint8), path_ends,
            _ends(np.asarray(box_image, dtype=np.int64), num),
            np.asarray(boxes, dtype=np.float32).reshape(-1, 4)[order],
            np.asarray(labels, dtype=np.int64)[order],
            _ends(np.asarray(ignore_image, dtype=np.int64), num),
            np.asarray(ignore_boxes, dtype=np.float32).reshape(-1, 4)[ignore_order],
            np.asarray(ignore_labels, dtype=np.int64)[ignore_order],
            **mask_arrays,
        )

    @classmethod
    def from_records(cls, records: Sequence[ImageRecord]) -> RecordIndex:
        """The index of ``records`` (in their order; all with masks, or all without)."""
        def image_of(counts: list[int]) -> np.ndarray:
            return np.repeat(np.arange(len(counts), dtype=np.int64), counts)

        def stacked(arrays: list[np.ndarray], width: int, dtype: type) -> np.ndarray:
            shape = (0, width) if width else (0,)
            return np.concatenate(arrays) if arrays else np.zeros(shape, dtype=dtype)

        with_mask = [r.masks is not None and r.ignore_masks is not None for r in records]
        if any(with_mask) and not all(with_mask):
            raise ValueError("RecordIndex: records with and without masks cannot be mixed")
        masks = ignore_masks = None
        if records and all(with_mask):
            masks = [m for r in records for m in r.masks]  # type: ignore[union-attr]
            ignore_masks = [m for r in records for m in r.ignore_masks]  # type: ignore[union-attr]
        return cls.from_columns(
            img_ids=np.array([r.img_id for r in records], dtype=np.int64),
            heights=np.array([r.height for r in records], dtype=np.int32),
            widths=np.array([r.width for r in records], dtype=np.int32),
            paths=[r.img_path for r in records],
            exif_transpose=np.array([r.exif_transpose for r in records], dtype=np.bool_),
            box_image=image_of([len(r.boxes) for r in records]),
            boxes=stacked([r.boxes for r in records], 4, np.float32),
            labels=stacked([r.labels for r in records], 0, np.int64),
            ignore_image=image_of([len(r.ignore_boxes) for r in records]),
            ignore_boxes=stacked([r.ignore_boxes for r in records], 4, np.float32),
            ignore_labels=stacked([r.ignore_labels for r in records], 0, np.int64),
            masks=masks,
            ignore_masks=ignore_masks,
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays by constructor argument name (``RecordIndex(**index.arrays())``); the
        mask arrays only when there are masks."""
        arrays = {name: getattr(self, name) for name, _ in self.FIELDS}
        if self.masks is not None and self.ignore_masks is not None:
            arrays.update(self.masks.named(""))
            arrays.update(self.ignore_masks.named("ignore_"))
        return arrays

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        return sum(array.nbytes for array in self.arrays().values())

    @property
    def num_boxes(self) -> int:
        """Ground-truth boxes of all images (ignore regions not counted)."""
        return len(self.boxes)

    def __len__(self) -> int:
        return len(self.img_ids)

    def __getitem__(self, index: int) -> ImageRecord:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(f"record {index} out of range ({len(self)})")
        index %= len(self)
        gt, ignored = _span(self.box_ends, index), _span(self.ignore_ends, index)
        return ImageRecord(
            img_id=int(self.img_ids[index]),
            img_path=self.path_bytes[_span(self.path_ends, index)].tobytes().decode(
                "utf-8", "surrogateescape"),
            height=int(self.heights[index]),
            width=int(self.widths[index]),
            boxes=self.boxes[gt].copy(),
            labels=self.labels[gt].copy(),
            ignore_boxes=self.ignore_boxes[ignored].copy(),
            ignore_labels=self.ignore_labels[ignored].copy(),
            exif_transpose=bool(self.exif_transpose[index]),
            masks=None if self.masks is None else self.masks.rows(gt),
            ignore_masks=None if self.ignore_masks is None else self.ignore_masks.rows(ignored),
        )

    def __iter__(self) -> Iterator[ImageRecord]:
        return (self[i] for i in range(len(self)))
