"""Spatial pyramid pooling as in YOLOv5: SPP (parallel max pools) and SPPF (chained pools)."""

from __future__ import annotations

import abc

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.errors import ConfigError, require_positive_int
from core.models.activations import InferenceInPlaceSiLU

HIDDEN_RATIO = 0.5  # the 1x1 reduction halves the channels before pooling


def conv_bn_silu(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 convolution + BatchNorm + SiLU: ``(B, in, H, W) -> (B, out, H, W)``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        InferenceInPlaceSiLU(),
    )


def max_pool_same(x: Tensor, kernel_size: int) -> Tensor:
    """Stride-1 max pooling that keeps the size: ``(B, C, H, W) -> (B, C, H, W)``."""
    return F.max_pool2d(x, kernel_size, stride=1, padding=kernel_size // 2)


class _PyramidPooling(nn.Module, metaclass=abc.ABCMeta):
    """``x (B, C, H, W) -> fuse(cat[r, pools(r)]) (B, C_out, H, W)`` with ``r = reduce(x)``;
    subclasses define the pools. Non-residual: it changes the features from the start."""

    def __init__(self, in_channels: int, out_channels: int | None, num_pools: int) -> None:
        super().__init__()
        require_positive_int("in_channels", in_channels)
        hidden = max(1, int(in_channels * HIDDEN_RATIO))
        self.reduce = conv_bn_silu(in_channels, hidden)
        self.fuse = conv_bn_silu(hidden * (num_pools + 1), out_channels or in_channels)

    @abc.abstractmethod
    def pools(self, x: Tensor) -> list[Tensor]:
        """The pooled maps of the reduced input, each ``(B, C_hidden, H, W)``."""

    def forward(self, x: Tensor) -> Tensor:
        """:param x: ``(B, C, H, W)``. :returns: ``(B, C_out, H, W)``."""
        x = self.reduce(x)
        fused: Tensor = self.fuse(torch.cat([x, *self.pools(x)], dim=1))
        return fused


class SPP(_PyramidPooling):
    """SPP: parallel stride-1 max pools of each of ``kernel_sizes`` on the reduced input.

    :param in_channels: ``C``, set by the network the layer is inserted into.
    :param out_channels: ``C_out``; None keeps ``C``.
    :param kernel_sizes: odd pooling windows.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        kernel_sizes: tuple[int, ...] = (5, 9, 13),
    ) -> None:
        if not kernel_sizes or any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ConfigError(f"kernel_sizes: expected odd positive ints, got {list(kernel_sizes)}")
        super().__init__(in_channels, out_channels, len(kernel_sizes))
        self.kernel_sizes = tuple(kernel_sizes)

    def pools(self, x: Tensor) -> list[Tensor]:
        return [max_pool_same(x, k) for k in self.kernel_sizes]


class SPPF(_PyramidPooling):
    """SPPF: ``num_pools`` chained ``kernel_size`` max pools; pool ``i`` sees a
    ``i * (kernel_size - 1) + 1`` window, so SPPF(5, 3 pools) equals SPP(5, 9, 13) with the
    same weights at less cost.

    :param in_channels: ``C``, set by the network the layer is inserted into.
    :param out_channels: ``C_out``; None keeps ``C``.
    :param kernel_size: odd pooling window of each chained pool.
    :param num_pools: number of chained pools.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        kernel_size: int = 5,
        num_pools: int = 3,
    ) -> None:
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size: expected an odd positive int, got {kernel_size}")
        require_positive_int("num_pools", num_pools)
        super().__init__(in_channels, out_channels, num_pools)
        self.kernel_size = kernel_size
        self.num_pools = num_pools

    def pools(self, x: Tensor) -> list[Tensor]:
        outs = []
        for _ in range(self.num_pools):
            x = max_pool_same(x, self.kernel_size)
            outs.append(x)
        return outs
