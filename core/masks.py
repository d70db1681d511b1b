"""Instance masks kept as polygons: compact in the data pipeline, exact under every geometric
transform, rasterised only at the size a loss or a metric needs.

A mask of one instance is a list of polygons (an object cut in parts has several), each a
``(K, 2)`` float32 array of ``x, y`` vertices in absolute pixels of the image the mask refers
to (same frame as the instance's box). Rasterisation is pycocotools', the one COCO evaluation
uses, so a mask drawn here and a mask scored by ``COCOeval`` agree pixel for pixel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch import Tensor

Polygon = np.ndarray  # (K, 2) float32 x, y
PointMap = Callable[[np.ndarray], np.ndarray]


def _as_polygon(points: Sequence[float] | np.ndarray) -> Polygon:
    array = np.asarray(points, dtype=np.float32)
    return array.reshape(-1, 2)


def _clip_edge(points: np.ndarray, axis: int, limit: float, keep_below: bool) -> np.ndarray:
    """One Sutherland-Hodgman pass: the part of a closed polygon on one side of the line
    ``coordinate[axis] = limit``. ``(K, 2) -> (K', 2)``."""
    if len(points) == 0:
        return points
    values = points[:, axis]
    inside = values <= limit if keep_below else values >= limit
    out: list[np.ndarray] = []
    previous, previous_inside = points[-1], bool(inside[-1])
    for current, current_inside in zip(points, inside, strict=True):
        if current_inside != previous_inside:
            t = (limit - previous[axis]) / (current[axis] - previous[axis])
            out.append(previous + t * (current - previous))
        if current_inside:
            out.append(current)
        previous, previous_inside = current, bool(current_inside)
    return np.asarray(out, dtype=np.float32).reshape(-1, 2)


def clip_polygon(points: Polygon, box: tuple[float, float, float, float]) -> Polygon:
    """The part of a polygon inside ``box = (x0, y0, x1, y1)`` (exact: the box is convex).
    ``(K, 2) -> (K', 2)``, ``K' = 0`` when nothing is inside."""
    x0, y0, x1, y1 = box
    for axis, limit, keep_below in ((0, x0, False), (0, x1, True), (1, y0, False),
                                    (1, y1, True)):
        points = _clip_edge(points, axis, limit, keep_below)
    return points


def polygon_area(points: Polygon) -> float:
    """Shoelace area of a closed polygon, in square pixels."""
    if len(points) < 3:
        return 0.0
    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


@attrs.define
class PolygonMasks:
    """N instance masks as polygons.

    :ivar polygons: ``polygons[i]`` is the list of ``(K, 2)`` float32 arrays of instance ``i``
        (absolute pixels; an instance may have several parts, or none after a crop).
    :ivar shape: ``(h, w)`` of the image the coordinates refer to.
    """

    polygons: list[list[Polygon]]
    shape: tuple[int, int]

    @classmethod
    def from_coco(cls, segmentations: Sequence[Sequence[Sequence[float]]],
                  shape: tuple[int, int]) -> PolygonMasks:
        """From COCO polygon lists (``[[x0, y0, x1, y1, ...], ...]`` per instance)."""
        return cls([[_as_polygon(part) for part in instance] for instance in segmentations],
                   (int(shape[0]), int(shape[1])))

    @classmethod
    def empty(cls, shape: tuple[int, int] = (0, 0)) -> PolygonMasks:
        """Zero masks."""
        return cls([], shape)

    def __len__(self) -> int:
        return len(self.polygons)

    def __getitem__(self, index: Tensor | np.ndarray | slice | int) -> PolygonMasks:
        """Select instances by boolean mask, index tensor/array, slice or int."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        if isinstance(index, slice):
            return PolygonMasks(self.polygons[index], self.shape)
        array = index.cpu().numpy() if isinstance(index, Tensor) else np.asarray(index)
        if array.dtype == bool:
            array = np.flatnonzero(array)
        return PolygonMasks([self.polygons[int(i)] for i in array.reshape(-1)], self.shape)

    @classmethod
    def cat(cls, parts: Sequence[PolygonMasks], shape: tuple[int, int] | None = None,
            ) -> PolygonMasks:
        """Concatenate mask sets (of the same image frame, ``shape`` if given)."""
        if shape is None:
            shape = parts[0].shape if parts else (0, 0)
        return cls([polygon for part in parts for polygon in part.polygons], shape)

    def map_points(self, function: PointMap, shape: tuple[int, int]) -> PolygonMasks:
        """Every vertex through ``function`` (``(K, 2) -> (K, 2)``), into a frame of ``shape``
        (resize, flip, translate, affine: exact on polygons)."""
        return PolygonMasks(
            [[function(part).astype(np.float32) for part in instance]
             for instance in self.polygons], shape)

    def rescale(self, sx: float, sy: float, shape: tuple[int, int]) -> PolygonMasks:
        """``x * sx, y * sy`` into a frame of ``shape``."""
        factor = np.asarray([sx, sy], dtype=np.float32)
        return self.map_points(lambda points: points * factor, shape)

    def translate(self, dx: float, dy: float, shape: tuple[int, int]) -> PolygonMasks:
        """``x + dx, y + dy`` into a frame of ``shape`` (padding, letterbox shift, mosaic)."""
        shift = np.asarray([dx, dy], dtype=np.float32)
        return self.map_points(lambda points: points + shift, shape)

    def flip(self, direction: str) -> PolygonMasks:
        """Mirror inside the frame like :func:`core.structures.flip_boxes`."""
        h, w = self.shape

        def mirror(points: np.ndarray) -> np.ndarray:
            out = points.copy()
            if direction in ("horizontal", "diagonal"):
                out[:, 0] = w - points[:, 0]
            if direction in ("vertical", "diagonal"):
                out[:, 1] = h - points[:, 1]
            return out

        if direction not in ("horizontal", "vertical", "diagonal"):
            raise ValueError(f"unknown flip direction {direction!r}")
        return self.map_points(mirror, self.shape)

    def clip(self, box: tuple[float, float, float, float] | None = None) -> PolygonMasks:
        """Each polygon cut to ``box = (x0, y0, x1, y1)`` (default the whole frame); parts
        with less than 3 vertices left are dropped (the instance may end with none)."""
        if box is None:
            box = (0.0, 0.0, float(self.shape[1]), float(self.shape[0]))
        clipped = [[part for part in (clip_polygon(p, box) for p in instance) if len(part) >= 3]
                   for instance in self.polygons]
        return PolygonMasks(clipped, self.shape)

    def crop(self, box: tuple[float, float, float, float]) -> PolygonMasks:
        """The region ``box = (x0, y0, x1, y1)`` as a new frame: clipped, then shifted so
        that ``(x0, y0)`` is the origin."""
        x0, y0, x1, y1 = box
        shape = (round(y1 - y0), round(x1 - x0))
        return self.clip(box).translate(-x0, -y0, shape)

    def areas(self) -> Tensor:
        """``(N,)`` float32 polygon area of each instance (parts summed)."""
        return torch.tensor([sum(polygon_area(p) for p in instance)
                             for instance in self.polygons], dtype=torch.float32)

    def bounding_boxes(self) -> Tensor:
        """``(N, 4)`` float32 xyxy hull of each instance's vertices (zeros for an empty
        instance)."""
        boxes = torch.zeros((len(self), 4), dtype=torch.float32)
        for i, instance in enumerate(self.polygons):
            parts = [p for p in instance if len(p)]
            if parts:
                points = np.concatenate(parts)
                boxes[i] = torch.from_numpy(np.concatenate([points.min(0), points.max(0)]))
        return boxes

    def to_rle(self) -> list[dict[str, Any]]:
        """One COCO RLE per instance in the frame ``shape`` (pycocotools' rasterisation)."""
        h, w = self.shape
        rles = []
        for instance in self.polygons:
            parts = [p.reshape(-1).astype(np.float64).tolist() for p in instance if len(p) >= 3]
            if parts:
                rles.append(mask_utils.merge(mask_utils.frPyObjects(parts, h, w)))
            else:
                rles.append(mask_utils.encode(np.zeros((h, w), dtype=np.uint8, order="F")))
        return rles

    def to_tensor(self) -> Tensor:
        """``(N, h, w)`` bool bitmaps at the frame's size."""
        h, w = self.shape
        if not len(self):
            return torch.zeros((0, h, w), dtype=torch.bool)
        bitmaps = mask_utils.decode(self.to_rle())  # (h, w, N) Fortran order
        return torch.from_numpy(np.ascontiguousarray(bitmaps.transpose(2, 0, 1))).bool()

    def crop_and_resize(self, boxes: Tensor, indices: Tensor, size: int | tuple[int, int],
                        ) -> Tensor:
        """The masks of ``indices`` seen through ``boxes``, rasterised at ``size``: targets of
        a RoI mask head (the polygon mapped into the box, box corner to corner onto the
        ``size`` grid, then filled).

        :param boxes: ``(R, 4)`` xyxy in this frame's pixels.
        :param indices: ``(R,)`` int64 instance of each box.
        :param size: ``S`` or ``(S_h, S_w)``.
        :returns: ``(R, S_h, S_w)`` float32 in {0, 1}, on ``boxes``' device.
        """
        out_h, out_w = (size, size) if isinstance(size, int) else size
        targets = torch.zeros((len(boxes), out_h, out_w), dtype=torch.float32)
        box_array = boxes.detach().cpu().double().numpy()
        for row, (box, index) in enumerate(zip(box_array, indices.tolist(), strict=True)):
            x0, y0, x1, y1 = box
            scale = np.asarray([out_w / max(x1 - x0, 1e-6), out_h / max(y1 - y0, 1e-6)])
            parts = [((p.astype(np.float64) - (x0, y0)) * scale).reshape(-1).tolist()
                     for p in self.polygons[index] if len(p) >= 3]
            if parts:
                rle = mask_utils.merge(mask_utils.frPyObjects(parts, out_h, out_w))
                targets[row] = torch.from_numpy(mask_utils.decode(rle).astype(np.float32))
        return targets.to(boxes.device)

    def nbytes(self) -> int:
        """Bytes held by the vertex arrays."""
        return sum(p.nbytes for instance in self.polygons for p in instance)
