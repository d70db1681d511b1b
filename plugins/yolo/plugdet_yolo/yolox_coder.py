"""YOLOX box regression from point priors: centre offsets from the cell corner and log sizes,
both in strides."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from core.api import ConfigError, clip_to_image, require_strides

#: Added to the size ratio before the log of an encoded target (a zero-size box).
LOG_EPS = 1e-8


class YOLOXBoxCoder:
    """``(dx, dy, dw, dh)`` per point prior: the box centre is ``(d + grid) * stride`` with
    ``grid`` the cell's top-left corner in cells, its size ``exp(dw, dh) * stride``.

    The priors are the points the assigner uses, ``(grid + prior_offset) * stride`` (YOLOX
    assigns with the cell centres, ``prior_offset = 0.5``), so the corner is
    ``point - prior_offset * stride``. ``encode`` gives the L1 targets of YOLOX's last epochs,
    ``(centre / stride - grid, log(size / stride + 1e-8))``. Priors are ``(..., 2)`` points,
    boxes/values ``(..., 4)`` (xyxy / dx dy dw dh), strides ``(...)``.

    :param prior_offset: where in its cell (in strides) each prior point lies.
    :param clip_border: clip decoded boxes to ``max_shape`` when one is given.
    :param max_log: the log sizes are clamped to at most this when decoding.
    """

    encode_size: ClassVar[int] = 4

    def __init__(self, prior_offset: float = 0.5, clip_border: bool = True,
                 max_log: float = 8.0) -> None:
        if max_log <= 0:
            raise ConfigError(f"max_log: expected a positive value, got {max_log}")
        self.prior_offset = prior_offset
        self.clip_border = clip_border
        self.max_log = max_log

    def corners(self, priors: Tensor, stride: Tensor) -> Tensor:
        """``(..., 2)`` top-left cell corners (pixels) of ``(..., 2)`` prior points."""
        return priors - self.prior_offset * stride

    def encode(self, priors: Tensor, boxes: Tensor, strides: Tensor | None = None) -> Tensor:
        """:returns: ``(..., 4)`` centre offsets from the corner and log sizes, in strides."""
        stride = require_strides(strides, "YOLOXBoxCoder").to(boxes.dtype)[..., None]
        corner = self.corners(priors.to(boxes.dtype), stride)
        centre = (boxes[..., :2] + boxes[..., 2:]) / 2
        size = boxes[..., 2:] - boxes[..., :2]
        return torch.cat([(centre - corner) / stride, torch.log(size / stride + LOG_EPS)],
                         dim=-1)

    def decode(self, priors: Tensor, deltas: Tensor, max_shape: Tensor | None = None,
               strides: Tensor | None = None) -> Tensor:
        """:param max_shape: ``(..., 2)`` image ``(h, w)`` broadcastable to the leading
        dimensions, or None. :returns: ``(..., 4)`` xyxy boxes."""
        stride = require_strides(strides, "YOLOXBoxCoder").to(deltas.dtype)[..., None]
        centre = deltas[..., :2] * stride + self.corners(priors.to(deltas.dtype), stride)
        half = deltas[..., 2:].clamp(max=self.max_log).exp() * stride / 2
        boxes = torch.cat([centre - half, centre + half], dim=-1)
        if self.clip_border and max_shape is not None:
            boxes = clip_to_image(boxes, max_shape)
        return boxes
