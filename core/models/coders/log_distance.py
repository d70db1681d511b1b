"""Point priors: a box as the log distances from the point to its four sides."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from core.errors import require_positive
from core.models.coders.common import clip_to_image, require_strides

#: Smallest side distance, in strides, an encoded target may have (the log needs > 0).
MIN_DISTANCE = 1e-3


class LogDistancePointCoder:
    """``(l, t, r, b) = log(distance to the left/top/right/bottom side / stride)``.

    Decoding is ``point -/+ exp(value) * stride``, so every decoded box is valid and a zero
    output is a box of two strides around the point (anchor-free heads' regression in the
    spirit of FCOS and YOLOX). Encoding clamps side distances below ``MIN_DISTANCE`` strides,
    for points outside their box (SimOTA's centre region).
    Priors are ``(..., 2)`` points, boxes/values ``(..., 4)``, strides ``(...)``.

    :param clip_border: clip decoded boxes to ``max_shape`` when one is given.
    :param max_log: decoded values are clamped to at most this (``exp(max_log)`` strides).
    """

    encode_size: ClassVar[int] = 4

    def __init__(self, clip_border: bool = True, max_log: float = 8.0) -> None:
        require_positive("max_log", max_log)
        self.clip_border = clip_border
        self.max_log = max_log

    def encode(self, priors: Tensor, boxes: Tensor, strides: Tensor | None = None) -> Tensor:
        """:returns: ``(..., 4)`` log side distances in strides."""
        stride = require_strides(strides, "LogDistancePointCoder").to(boxes.dtype)[..., None]
        points = priors.to(boxes.dtype)
        distances = torch.cat([points - boxes[..., :2], boxes[..., 2:] - points], dim=-1)
        return torch.log((distances / stride).clamp(min=MIN_DISTANCE))

    def decode(self, priors: Tensor, deltas: Tensor, max_shape: Tensor | None = None,
               strides: Tensor | None = None) -> Tensor:
        """:param max_shape: ``(..., 2)`` image ``(h, w)`` broadcastable to the leading
        dimensions, or None. :returns: ``(..., 4)`` xyxy boxes."""
        stride = require_strides(strides, "LogDistancePointCoder").to(deltas.dtype)[..., None]
        distances = deltas.clamp(max=self.max_log).exp() * stride
        points = priors.to(deltas.dtype)
        boxes = torch.cat([points - distances[..., :2], points + distances[..., 2:]], dim=-1)
        if self.clip_border and max_shape is not None:
            boxes = clip_to_image(boxes, max_shape)
        return boxes
