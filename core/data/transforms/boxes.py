"""Box and mask geometry shared by the transforms. Boxes are ``(N, 4)`` float32 xyxy absolute
pixels; ground-truth masks are :class:`~core.masks.PolygonMasks` in the same frame as the boxes.

Flipping and clipping of boxes (``flip_boxes``, ``clip_boxes``) live in :mod:`core.structures`,
next to the mapping back to the original image that uses them. Instances without masks take
exactly the box operations they took before masks existed."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np
from torch import Tensor

from core.errors import DataError
from core.masks import Polygon, PolygonMasks, clip_polygon, polygon_area
from core.structures import DetSample, Instances, clip_boxes


def scale_boxes(boxes: Tensor, sx: float, sy: float) -> Tensor:
    """Multiply x coordinates by ``sx`` and y coordinates by ``sy``. ``(N, 4) -> (N, 4)``."""
    return boxes * boxes.new_tensor([sx, sy, sx, sy])


def translate_boxes(boxes: Tensor, dx: float, dy: float) -> Tensor:
    """Shift boxes by ``(dx, dy)`` pixels. ``(N, 4) -> (N, 4)``."""
    return boxes + boxes.new_tensor([dx, dy, dx, dy])


def valid_mask(boxes: Tensor, min_size: float) -> Tensor:
    """``(N,)`` bool: width and height both at least ``min_size`` (and positive)."""
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    return (widths >= min_size) & (heights >= min_size) & (widths > 0) & (heights > 0)


def polygon_masks(instances: Instances) -> PolygonMasks | None:
    """The instances' ground-truth masks, ``None`` when they have none.

    :raises DataError: the masks are bitmaps (a geometric transform moves polygons exactly,
        a bitmap it cannot).
    """
    masks = instances.masks
    if masks is None or isinstance(masks, PolygonMasks):
        return masks
    raise DataError(f"ground-truth masks must be PolygonMasks to be transformed, got a "
                    f"{type(masks).__name__} of shape {tuple(masks.shape)}")


def check_masks(sample: DetSample, shape: tuple[int, int], transform: str) -> None:
    """Before ``transform`` moves the pixels of an image of ``shape = (h, w)``: the masks of
    ``sample.gt`` and ``sample.ignore`` (where present) are polygons in that frame.

    :raises DataError: bitmap masks, or masks of another frame (they would end misaligned).
    """
    for name, instances in (("gt", sample.gt), ("ignore", sample.ignore)):
        try:
            masks = polygon_masks(instances)
        except DataError as exc:
            raise DataError(f"{transform}: sample img_id={sample.img_id} ({sample.img_path}) "
                            f"{name}: {exc}") from exc
        if masks is not None and len(masks) and tuple(masks.shape) != tuple(shape):
            raise DataError(
                f"{transform}: sample img_id={sample.img_id} ({sample.img_path}) {name}: masks "
                f"refer to a {masks.shape[0]}x{masks.shape[1]} frame but the image is "
                f"{shape[0]}x{shape[1]}")


def map_instances(instances: Instances, boxes: Tensor,
                  masks: PolygonMasks | None = None) -> Instances:
    """The same instances with new ``boxes`` and ``masks`` (labels and scores kept).

    :param masks: the instances' masks moved like ``boxes``; required when ``instances`` has
        masks.
    :raises DataError: ``instances`` has masks but no moved ``masks`` are given (boxes would
        move without their masks).
    """
    if instances.masks is not None and masks is None:
        raise DataError("instances with masks moved without their masks; pass the moved masks "
                        "(a geometric transform must move both)")
    return Instances(boxes=boxes, labels=instances.labels, scores=instances.scores, masks=masks)


def clip_masks(masks: PolygonMasks, shape: tuple[int, int]) -> PolygonMasks:
    """Each polygon cut to the frame ``shape = (h, w)`` (the frame of the result); parts left
    with fewer than 3 vertices or no area are dropped, an instance may end with none. Polygons
    already inside are kept as they are (the common case costs no clipping)."""
    h, w = shape
    box = (0.0, 0.0, float(w), float(h))

    def inside(part: Polygon) -> list[Polygon]:
        if len(part) and part.min() >= 0 and part[:, 0].max() <= w and part[:, 1].max() <= h:
            return [part]
        clipped = clip_polygon(part, box)
        return [clipped] if len(clipped) >= 3 and polygon_area(clipped) > 0 else []

    return PolygonMasks([[kept for part in instance for kept in inside(part)]
                         for instance in masks.polygons], shape)


def has_polygon(masks: PolygonMasks) -> np.ndarray:
    """``(N,)`` bool: instance ``i`` has at least one polygon of 3 or more vertices."""
    return np.array([any(len(part) >= 3 for part in instance) for instance in masks.polygons],
                    dtype=bool)


def translate_instances(instances: Instances, dx: float, dy: float,
                        shape: tuple[int, int]) -> Instances:
    """Boxes and masks shifted by ``(dx, dy)`` pixels, masks into the frame ``shape``
    (not clipped)."""
    boxes = translate_boxes(instances.boxes, dx, dy)
    masks = polygon_masks(instances)
    if masks is None:
        return map_instances(instances, boxes)
    return map_instances(instances, boxes, masks.translate(dx, dy, shape))


def clip_and_filter(instances: Instances, shape: tuple[int, int], min_size: float) -> Instances:
    """Clip to ``shape = (h, w)`` and drop instances smaller than ``min_size`` (labels and
    masks follow; masks, already in the frame ``shape``, are clipped to it too)."""
    boxes = clip_boxes(instances.boxes, shape)
    keep = valid_mask(boxes, min_size)
    masks = polygon_masks(instances)
    if masks is None:
        return map_instances(instances, boxes)[keep]
    kept = map_instances(instances, boxes, masks)[keep]
    return attrs.evolve(kept, masks=clip_masks(kept.masks, shape))  # type: ignore[arg-type]


def cat_instances(parts: Sequence[Instances], shape: tuple[int, int], where: str) -> Instances:
    """Instance sets of one image frame ``shape`` joined (mosaic tiles, mixed-up samples).
    Without masks anywhere this is :meth:`Instances.cat`; with masks, a part with no
    instances and no masks counts as empty masks.

    :raises DataError: a part with instances has no masks while another has masks.
    """
    if all(part.masks is None for part in parts):
        return Instances.cat(parts)
    masks = []
    for part in parts:
        part_masks = polygon_masks(part)
        if part_masks is None and len(part):
            raise DataError(f"{where}: cannot combine samples with masks and samples without")
        masks.append(PolygonMasks.empty(shape) if part_masks is None else part_masks)
    joined = Instances.cat([attrs.evolve(part, masks=None) for part in parts])
    return attrs.evolve(joined, masks=PolygonMasks.cat(masks, shape))
