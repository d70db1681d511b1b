"""Distances from a point to the four sides of a box (anchor-free heads: FCOS, YOLOv8)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from core.models.coders.common import clip_to_image


class DistancePointBBoxCoder:
    """Encodes a box relative to a point as ``(left, top, right, bottom)`` distances
    ``(px - x1, py - y1, x2 - px, y2 - py)``, divided by the prior's stride when ``strides``
    is given (YOLOv8 regresses in stride units). Decoding inverts this and optionally clips
    boxes to the image. Tensors broadcast: points ``(..., 2)``, boxes and distances
    ``(..., 4)``, strides ``(...)``.

    :param clip_border: clip decoded boxes to ``max_shape`` when one is given.
    """

    encode_size: ClassVar[int] = 4

    def __init__(self, clip_border: bool = True) -> None:
        self.clip_border = clip_border

    def encode(self, priors: Tensor, boxes: Tensor, strides: Tensor | None = None) -> Tensor:
        """:param priors: ``(..., 2)`` points ``(x, y)``. :param boxes: ``(..., 4)`` xyxy.
        :param strides: ``(...)`` or None (pixels).
        :returns: ``(..., 4)`` ltrb distances (negative for points outside the box)."""
        points = priors[..., :2].to(boxes.dtype)
        distances = torch.cat([points - boxes[..., :2], boxes[..., 2:] - points], dim=-1)
        return distances if strides is None else distances / strides[..., None]

    def decode(self, priors: Tensor, deltas: Tensor, max_shape: Tensor | None = None,
               strides: Tensor | None = None) -> Tensor:
        """:param priors: ``(..., 2)`` points. :param deltas: ``(..., 4)`` ltrb distances.
        :param max_shape: ``(..., 2)`` image ``(h, w)`` broadcastable to the boxes' leading
            dimensions, or None. :param strides: ``(...)`` or None (pixels).
        :returns: ``(..., 4)`` xyxy boxes."""
        if strides is not None:
            deltas = deltas * strides[..., None].to(deltas.dtype)
        points = priors[..., :2].to(deltas.dtype)
        boxes = torch.cat([points - deltas[..., :2], points + deltas[..., 2:]], dim=-1)
        if self.clip_border and max_shape is not None:
            boxes = clip_to_image(boxes, max_shape)
        return boxes
