"""Tile windows of an image and the boxes of a window (SAHI's slicing geometry).

A window is ``(x1, y1, x2, y2)`` in integer image pixels. Along each axis the windows start at
``0, step, 2 * step, ...`` with ``step = size - int(overlap_ratio * size)``; the first window
reaching past the image edge is shifted back to end exactly at it (and is the last one). An
image smaller than a window along an axis gets one window covering that axis. The windows of
an image are the row-major product of the two axes (rows top to bottom, each left to right),
which is the order and the geometry of SAHI's ``get_slice_bboxes``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from core.structures import Instances, clip_boxes

Window = tuple[int, int, int, int]


def axis_starts(length: int, size: int, overlap_ratio: float) -> list[int]:
    """Start coordinates of the windows of ``size`` pixels along an axis of ``length``.

    :raises ValueError: ``length`` or ``size`` below 1, ``overlap_ratio`` outside ``[0, 1)``.
    """
    if length < 1 or size < 1:
        raise ValueError(f"length and size must be positive, got {length} and {size}")
    if not 0.0 <= overlap_ratio < 1.0:
        raise ValueError(f"overlap ratio must be in [0, 1), got {overlap_ratio}")
    step = size - int(overlap_ratio * size)
    starts, start = [], 0
    while True:
        if start + size >= length:
            starts.append(max(0, length - size))
            return starts
        starts.append(start)
        start += step


def slice_windows(height: int, width: int, size: tuple[int, int],
                  overlap: tuple[float, float] = (0.2, 0.2)) -> list[Window]:
    """The tile windows of an image of ``height x width``.

    :param size: ``(h, w)`` of a window.
    :param overlap: ``(height ratio, width ratio)`` of overlap between neighbouring windows.
    :returns: windows ``(x1, y1, x2, y2)``, row-major; a window is smaller than ``size`` only
        along an axis shorter than it.
    """
    rows = axis_starts(height, size[0], overlap[0])
    columns = axis_starts(width, size[1], overlap[1])
    return [(x, y, min(x + size[1], width), min(y + size[0], height))
            for y in rows for x in columns]


def window_to_image(instances: Instances, window: Window) -> Instances:
    """Detections of a window (boxes ``(N, 4)`` in window pixels) in image pixels: shifted by
    the window's corner and clipped to the window."""
    x1, y1, x2, y2 = window
    boxes = clip_boxes(instances.boxes, (y2 - y1, x2 - x1))
    shifted = boxes + boxes.new_tensor([x1, y1, x1, y1])
    return Instances(shifted, instances.labels, instances.scores)


def crop_instances(instances: Instances, window: Window,
                   min_area_ratio: float = 0.1) -> tuple[Instances, Tensor]:
    """Boxes of an image cut to a window, in window pixels.

    A box is kept when it overlaps the window and the part inside holds at least
    ``min_area_ratio`` of its area (SAHI's ``min_area_ratio`` of sliced annotations); a part
    of no area is dropped.

    :param instances: boxes ``(N, 4)`` in image pixels.
    :returns: the kept boxes clipped to the window and shifted to its corner, and the ``(N,)``
        bool mask of the kept ones.
    """
    x1, y1, x2, y2 = window
    boxes = instances.boxes
    inside = torch.stack([boxes[:, 0].clamp(x1, x2), boxes[:, 1].clamp(y1, y2),
                          boxes[:, 2].clamp(x1, x2), boxes[:, 3].clamp(y1, y2)], dim=1)
    clipped_area = (inside[:, 2] - inside[:, 0]) * (inside[:, 3] - inside[:, 1])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    overlaps = (boxes[:, 0] < x2) & (boxes[:, 2] > x1) & (boxes[:, 1] < y2) & (boxes[:, 3] > y1)
    keep = overlaps & (clipped_area > 0) & (clipped_area >= min_area_ratio * area)
    shifted = inside[keep] - inside.new_tensor([x1, y1, x1, y1])
    kept = Instances(shifted, instances.labels[keep],
                     None if instances.scores is None else instances.scores[keep])
    return kept, keep
