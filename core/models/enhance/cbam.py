"""CBAM (Woo et al., 2018): channel attention, then spatial attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.errors import ConfigError
from core.models.enhance.common import identity_gate, reduced_channels, zero_init_

SPATIAL_KERNELS = (3, 7)


class ChannelAttention(nn.Module):
    """``(B, C, H, W) -> (B, C, 1, 1)`` gate from a shared MLP on average and max pooling."""

    def __init__(self, in_channels: int, ratio: float) -> None:
        super().__init__()
        hidden = reduced_channels(in_channels, ratio)
        self.mlp = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, in_channels, 1),
        )
        zero_init_(self.mlp[-1])

    def forward(self, x: Tensor) -> Tensor:
        logits = self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1))
        return identity_gate(logits)


class SpatialAttention(nn.Module):
    """``(B, C, H, W) -> (B, 1, H, W)`` gate from a conv over the channel mean and max."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)
        zero_init_(self.conv)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return identity_gate(self.conv(pooled))


class CBAM(nn.Module):
    """``x (B, C, H, W) -> y * spatial(y)`` with ``y = x * channel(x)``, shape ``(B, C, H, W)``.

    Both gates are ``2 * sigmoid`` of a zero-initialised conv: the layer starts as the identity.

    :param in_channels: ``C``, set by the network the layer is inserted into.
    :param ratio: hidden width of the channel MLP as a fraction of ``C``.
    :param spatial_kernel: kernel of the spatial attention conv, 3 or 7.
    """

    def __init__(self, in_channels: int, ratio: float = 1 / 16, spatial_kernel: int = 7) -> None:
        super().__init__()
        if spatial_kernel not in SPATIAL_KERNELS:
            raise ConfigError(
                f"spatial_kernel: expected one of {SPATIAL_KERNELS}, got {spatial_kernel}"
            )
        self.channel = ChannelAttention(in_channels, ratio)
        self.spatial = SpatialAttention(spatial_kernel)

    def forward(self, x: Tensor) -> Tensor:
        """:param x: ``(B, C, H, W)``. :returns: ``(B, C, H, W)``."""
        x = x * self.channel(x)
        gate: Tensor = self.spatial(x)
        return x * gate
