"""Global context block of GCNet (Cao et al., 2019): context pooling plus a channel transform."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.errors import ConfigError
from core.models.enhance.common import identity_gate, reduced_channels, zero_init_

PoolingType = Literal["att", "avg"]
FusionType = Literal["channel_add", "channel_mul"]
POOLING_TYPES = ("att", "avg")
FUSION_TYPES = ("channel_add", "channel_mul")


class ChannelTransform(nn.Sequential):
    """``(B, C, 1, 1) -> (B, C, 1, 1)``: 1x1 conv to ``P`` channels, LayerNorm, ReLU, 1x1 conv
    back to ``C`` (zero-initialised, so the transform starts at zero)."""

    def __init__(self, in_channels: int, planes: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, planes, 1),
            nn.LayerNorm([planes, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(planes, in_channels, 1),
        )
        zero_init_(self[-1])


class ContextBlock(nn.Module):
    """``x (B, C, H, W) -> x * gate(T_mul(c)) + T_add(c) (B, C, H, W)``.

    ``c (B, C, 1, 1)`` is the global context: the sum of ``x`` over positions weighted by
    ``softmax`` of a 1x1 conv (``att``) or the mean over positions (``avg``). ``T_add`` and
    ``T_mul`` are :class:`ChannelTransform` s, present for ``channel_add`` and ``channel_mul``
    in ``fusion_types``; the gate is ``2 * sigmoid``. Both transforms start at zero, so the
    block starts as the identity.

    :param in_channels: ``C``, set by the network the layer is inserted into.
    :param ratio: width ``P`` of the transforms as a fraction of ``C``.
    :param pooling_type: ``"att"`` (attention pooling) or ``"avg"``.
    :param fusion_types: one or both of ``"channel_add"``, ``"channel_mul"``.
    """

    def __init__(
        self,
        in_channels: int,
        ratio: float = 1 / 16,
        pooling_type: PoolingType = "att",
        fusion_types: tuple[FusionType, ...] = ("channel_add",),
    ) -> None:
        super().__init__()
        if pooling_type not in POOLING_TYPES:
            raise ConfigError(
                f"pooling_type: expected one of {POOLING_TYPES}, got {pooling_type!r}"
            )
        if not fusion_types or any(f not in FUSION_TYPES for f in fusion_types):
            raise ConfigError(
                f"fusion_types: expected one or both of {FUSION_TYPES}, got {list(fusion_types)}"
            )
        planes = reduced_channels(in_channels, ratio)
        self.pooling_type = pooling_type
        self.conv_mask = nn.Conv2d(in_channels, 1, 1) if pooling_type == "att" else None
        self.channel_add = (
            ChannelTransform(in_channels, planes) if "channel_add" in fusion_types else None
        )
        self.channel_mul = (
            ChannelTransform(in_channels, planes) if "channel_mul" in fusion_types else None
        )

    def context(self, x: Tensor) -> Tensor:
        """:param x: ``(B, C, H, W)``. :returns: the global context ``(B, C, 1, 1)``."""
        if self.conv_mask is None:
            return F.adaptive_avg_pool2d(x, 1)
        weights = torch.softmax(self.conv_mask(x).flatten(2), dim=-1)  # (B, 1, N)
        return torch.matmul(x.flatten(2), weights.transpose(1, 2)).unsqueeze(-1)

    def forward(self, x: Tensor) -> Tensor:
        """:param x: ``(B, C, H, W)``. :returns: ``(B, C, H, W)``."""
        context = self.context(x)
        out = x
        if self.channel_mul is not None:
            out = out * identity_gate(self.channel_mul(context))
        if self.channel_add is not None:
            out = out + self.channel_add(context)
        return out
