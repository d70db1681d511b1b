"""Centre/size deltas (R-CNN parameterisation) between priors and boxes."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor

from core.errors import ConfigError
from core.models.coders.common import clip_to_image

HALF = 0.5
#: Default smallest allowed width/height ratio change when decoding (exp(|log| 16/1000)).
DEFAULT_WH_RATIO_CLIP = 16 / 1000


def _center_size(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    widths = boxes[..., 2] - boxes[..., 0]
    heights = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + HALF * widths, boxes[..., 1] + HALF * heights, widths, heights


class DeltaXYWHBBoxCoder:
    """Encodes a box relative to a prior as ``(dx, dy, dw, dh)`` normalised by means/stds.

    ``dx = (gx - px) / pw``, ``dw = log(gw / pw)`` (same for y/h), then
    ``(delta - target_means) / target_stds``. Decoding inverts this, clamps ``dw, dh`` to
    ``±|log(wh_ratio_clip)|`` and optionally clips boxes to the image.
    All tensors broadcast: priors ``(..., 4)``, boxes/deltas ``(..., 4)``; ``strides`` is
    accepted for the coder contract and unused (the deltas are relative to the prior's size).

    :param target_means: means subtracted from the deltas.
    :param target_stds: stds dividing the deltas.
    :param clip_border: clip decoded boxes to ``max_shape`` when one is given.
    :param wh_ratio_clip: smallest width/height scale change a delta may express.
    """

    encode_size: ClassVar[int] = 4

    def __init__(
        self,
        target_means: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
        target_stds: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
        clip_border: bool = True,
        wh_ratio_clip: float = DEFAULT_WH_RATIO_CLIP,
    ) -> None:
        if len(target_means) != 4 or len(target_stds) != 4:
            raise ConfigError("target_means/target_stds: expected 4 values each")
        if any(s <= 0 for s in target_stds):
            raise ConfigError(f"target_stds: expected positive values, got {target_stds}")
        if not 0 < wh_ratio_clip <= 1:
            raise ConfigError(f"wh_ratio_clip: expected a value in (0, 1], got {wh_ratio_clip}")
        self.target_means = tuple(float(m) for m in target_means)
        self.target_stds = tuple(float(s) for s in target_stds)
        self.clip_border = clip_border
        self.max_ratio = abs(math.log(wh_ratio_clip))

    def encode(self, priors: Tensor, boxes: Tensor, strides: Tensor | None = None) -> Tensor:
        """:param priors: ``(..., 4)`` xyxy. :param boxes: ``(..., 4)`` xyxy targets.
        :returns: ``(..., 4)`` normalised deltas."""
        px, py, pw, ph = _center_size(priors.to(boxes.dtype))
        gx, gy, gw, gh = _center_size(boxes)
        deltas = torch.stack(
            [(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], dim=-1
        )
        means = deltas.new_tensor(self.target_means)
        stds = deltas.new_tensor(self.target_stds)
        return (deltas - means) / stds

    def decode(self, priors: Tensor, deltas: Tensor, max_shape: Tensor | None = None,
               strides: Tensor | None = None) -> Tensor:
        """:param priors: ``(..., 4)`` xyxy. :param deltas: ``(..., 4)`` normalised deltas.
        :param max_shape: ``(..., 2)`` image ``(h, w)`` broadcastable to the boxes' leading
            dimensions (e.g. ``(B, 1, 2)`` for ``(B, K, 4)`` deltas), or None.
        :returns: ``(..., 4)`` xyxy boxes."""
        means = deltas.new_tensor(self.target_means)
        stds = deltas.new_tensor(self.target_stds)
        dx, dy, dw, dh = (deltas * stds + means).unbind(dim=-1)
        dw = dw.clamp(min=-self.max_ratio, max=self.max_ratio)
        dh = dh.clamp(min=-self.max_ratio, max=self.max_ratio)
        px, py, pw, ph = _center_size(priors.to(deltas.dtype))
        cx = dx * pw + px
        cy = dy * ph + py
        half_w = HALF * (torch.exp(dw) * pw)
        half_h = HALF * (torch.exp(dh) * ph)
        boxes = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1)
        if self.clip_border and max_shape is not None:
            boxes = clip_to_image(boxes, max_shape)
        return boxes
