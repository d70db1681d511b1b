"""Box geometry shared by the transforms. Boxes are ``(N, 4)`` float32 xyxy absolute pixels."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from core.structures import Instances

FlipDirection = Literal["horizontal", "vertical", "diagonal"]


def scale_boxes(boxes: Tensor, sx: float, sy: float) -> Tensor:
    """Multiply x coordinates by ``sx`` and y coordinates by ``sy``. ``(N, 4) -> (N, 4)``."""
    return boxes * boxes.new_tensor([sx, sy, sx, sy])


def translate_boxes(boxes: Tensor, dx: float, dy: float) -> Tensor:
    """Shift boxes by ``(dx, dy)`` pixels. ``(N, 4) -> (N, 4)``."""
    return boxes + boxes.new_tensor([dx, dy, dx, dy])


def flip_boxes(boxes: Tensor, shape: tuple[int, int], direction: FlipDirection) -> Tensor:
    """Mirror boxes inside an image of ``shape = (h, w)``. ``(N, 4) -> (N, 4)``."""
    if direction not in ("horizontal", "vertical", "diagonal"):
        raise ValueError(f"unknown flip direction {direction!r}")
    h, w = shape
    flipped = boxes.clone()
    if direction in ("horizontal", "diagonal"):
        flipped[:, 0] = w - boxes[:, 2]
        flipped[:, 2] = w - boxes[:, 0]
    if direction in ("vertical", "diagonal"):
        flipped[:, 1] = h - boxes[:, 3]
        flipped[:, 3] = h - boxes[:, 1]
    return flipped


def clip_boxes(boxes: Tensor, shape: tuple[int, int]) -> Tensor:
    """Clip boxes to an image of ``shape = (h, w)``. ``(N, 4) -> (N, 4)``."""
    h, w = shape
    limits = boxes.new_tensor([w, h, w, h])
    return torch.minimum(boxes.clamp(min=0), limits)


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
