"""Box geometry shared by the transforms. Boxes are ``(N, 4)`` float32 xyxy absolute pixels.

Flipping and clipping (``flip_boxes``, ``clip_boxes``) live in :mod:`core.structures`, next to
the mapping back to the original image that uses them."""

from __future__ import annotations

from torch import Tensor

from core.structures import Instances, clip_boxes


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


def map_instances(instances: Instances, boxes: Tensor) -> Instances:
    """The same instances with new ``boxes`` (labels and scores kept)."""
    return Instances(boxes=boxes, labels=instances.labels, scores=instances.scores)


def clip_and_filter(instances: Instances, shape: tuple[int, int], min_size: float) -> Instances:
    """Clip to ``shape = (h, w)`` and drop instances smaller than ``min_size`` (labels follow)."""
    boxes = clip_boxes(instances.boxes, shape)
    keep = valid_mask(boxes, min_size)
    return map_instances(instances, boxes)[keep]
