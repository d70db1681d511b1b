"""YOLOv5's box parametrisation: sigmoid offsets from the cell corner, anchor-relative sizes."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from core.api import clip_to_image, require_strides

#: Decoded centre offsets span ``(-XY_MARGIN, 1 + XY_MARGIN)`` cells, sizes up to
#: ``WH_SPAN ** 2`` times the anchor.
XY_MARGIN = 0.5
WH_SPAN = 2.0
#: Encoded sigmoid values are kept in ``[EPS, 1 - EPS]`` (finite logits at the range ends).
EPS = 1e-6


class YOLOv5BoxCoder:
    """``(tx, ty, tw, th)`` logits <-> xyxy boxes relative to anchors whose centre is their
    cell's top-left corner (``AnchorGenerator`` with ``center_offset = 0``):

        x = corner_x + (2 sigmoid(tx) - 0.5) * stride,    w = (2 sigmoid(tw)) ** 2 * anchor_w

    and likewise for ``y`` and ``h``. ``encode`` is the inverse; it is defined for centres
    within ``(-0.5, 1.5)`` cells of the corner and sizes within ``(0, 4)`` times the anchor
    (what shape matching with ``anchor_t = 4`` and the neighbour cells produce); outside
    that range the sigmoid values are clamped to ``[1e-6, 1 - 1e-6]``.

    :param clip_border: clip decoded boxes to ``max_shape`` when one is given.
    """

    encode_size: ClassVar[int] = 4

    def __init__(self, clip_border: bool = True) -> None:
        self.clip_border = clip_border

    @staticmethod
    def _split(priors: Tensor, strides: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        stride = require_strides(strides, "YOLOv5BoxCoder")[..., None].to(priors)
        corner = (priors[..., :2] + priors[..., 2:]) / 2
        return corner, priors[..., 2:] - priors[..., :2], stride

    def decode(self, priors: Tensor, deltas: Tensor, max_shape: Tensor | None = None,
               strides: Tensor | None = None) -> Tensor:
        """:param priors: ``(..., 4)`` xyxy anchors. :param deltas: ``(..., 4)`` raw logits.
        :param max_shape: ``(..., 2)`` image ``(h, w)`` broadcastable to the leading dims.
        :param strides: ``(...)`` stride of each prior.
        :returns: ``(..., 4)`` xyxy boxes."""
        corner, anchor_wh, stride = self._split(priors, strides)
        values = deltas.sigmoid() * WH_SPAN
        centre = corner + (values[..., :2] - XY_MARGIN) * stride
        half = values[..., 2:] ** 2 * anchor_wh / 2
        boxes = torch.cat([centre - half, centre + half], dim=-1)
        if self.clip_border and max_shape is not None:
            boxes = clip_to_image(boxes, max_shape)
        return boxes

    def encode(self, priors: Tensor, boxes: Tensor, strides: Tensor | None = None) -> Tensor:
        """:param priors: ``(..., 4)`` xyxy anchors. :param boxes: ``(..., 4)`` xyxy.
        :param strides: ``(...)`` stride of each prior.
        :returns: ``(..., 4)`` logits that decode to ``boxes`` (within the range above)."""
        corner, anchor_wh, stride = self._split(priors, strides)
        centre = (boxes[..., :2] + boxes[..., 2:]) / 2
        wh = boxes[..., 2:] - boxes[..., :2]
        xy = ((centre - corner) / stride + XY_MARGIN) / WH_SPAN
        size = (wh / anchor_wh).clamp(min=0).sqrt() / WH_SPAN
        return torch.logit(torch.cat([xy, size], dim=-1).clamp(EPS, 1 - EPS))
