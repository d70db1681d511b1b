"""The building blocks of the YOLO backbones and necks: conv-BN-SiLU, the Darknet bottleneck,
the C3 (YOLOv5) and C2f (YOLOv8) CSP blocks, SPPF, and the width/depth scaling rules.

SPPF is core's :class:`core.models.enhance.SPPF` (1x1 halving, three chained 5x5 max pools,
1x1 fuse: the YOLO layer exactly); :func:`yolo_norm_` gives its BatchNorms the YOLO settings.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from core.api import SPPF, ConfigError, InferenceInPlaceSiLU

#: BatchNorm settings of the YOLO references (ultralytics, MMYOLO).
BN_EPS = 1e-3
BN_MOMENTUM = 0.03
#: Channels are rounded up to a multiple of this after widening.
CHANNEL_DIVISOR = 8
#: Hidden channels of a CSP block relative to its output.
CSP_EXPANSION = 0.5
SPPF_KERNEL = 5


def make_divisible(channels: float, widen_factor: float = 1.0,
                   divisor: int = CHANNEL_DIVISOR) -> int:
    """``channels * widen_factor`` rounded up to a multiple of ``divisor``."""
    return int(math.ceil(channels * widen_factor / divisor) * divisor)


def make_round(num_blocks: int, deepen_factor: float = 1.0) -> int:
    """``num_blocks * deepen_factor`` rounded, at least 1 (a single block stays single)."""
    return max(round(num_blocks * deepen_factor), 1) if num_blocks > 1 else num_blocks


def check_factors(deepen_factor: float, widen_factor: float) -> None:
    """Raise :class:`ConfigError` unless both scaling factors are positive."""
    for name, value in (("deepen_factor", deepen_factor), ("widen_factor", widen_factor)):
        if not value > 0:
            raise ConfigError(f"{name}: expected a positive number, got {value}")


class StagedBackbone(nn.Module):
    """Base of the YOLO-family backbones: layer ``0`` is a stride-2 stem, layers ``1..`` the
    stages (each halving the resolution); ``forward`` returns the layers of ``out_indices``.

    A subclass calls ``super().__init__`` (which checks the factors and ``out_indices``), then
    :meth:`set_layers` with its stem and stages.

    :param deepen_factor: multiplies the blocks of every stage.
    :param widen_factor: multiplies every channel count.
    :param out_indices: layers returned (0 the stem, 1.. the stages), increasing.
    :param num_layers: the stem plus the number of stages.
    """

    def __init__(self, deepen_factor: float, widen_factor: float,
                 out_indices: tuple[int, ...], num_layers: int) -> None:
        super().__init__()
        check_factors(deepen_factor, widen_factor)
        if (not out_indices or list(out_indices) != sorted(set(out_indices))
                or any(i not in range(num_layers) for i in out_indices)):
            raise ConfigError(f"out_indices: expected increasing indices in "
                              f"0..{num_layers - 1}, got {list(out_indices)}")
        self.deepen_factor, self.widen_factor = deepen_factor, widen_factor
        self.out_indices = tuple(out_indices)

    def set_layers(self, stem: nn.Module, stages: list[nn.Module], channels: list[int]
                   ) -> None:
        """Install the layers; ``channels[i]`` is the output channels of layer ``i``."""
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.out_channels = [channels[i] for i in self.out_indices]

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """:param x: images ``(B, 3, H, W)``. :returns: one map per ``out_indices``."""
        x = self.stem(x)
        outs = [x] if 0 in self.out_indices else []
        for index, stage in enumerate(self.stages, start=1):
            x = stage(x)
            if index in self.out_indices:
                outs.append(x)
        return tuple(outs)


def yolo_norm_(module: nn.Module) -> nn.Module:
    """Give every BatchNorm of ``module`` the YOLO ``eps`` and ``momentum``; returns it."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps, m.momentum = BN_EPS, BN_MOMENTUM
    return module


class ConvBNSiLU(nn.Sequential):
    """Convolution (no bias) + BatchNorm (eps 1e-3, momentum 0.03) + SiLU:
    ``(B, in, H, W) -> (B, out, H / stride, W / stride)``; padding ``kernel_size // 2`` unless
    given."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1,
                 stride: int = 1, padding: int | None = None) -> None:
        padding = kernel_size // 2 if padding is None else padding
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False),
            nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM),
            InferenceInPlaceSiLU(),
        )


class DarknetBottleneck(nn.Module):
    """``x -> conv2(conv1(x)) (+ x)``: ``(B, C_in, H, W) -> (B, C_out, H, W)``.

    :param expansion: hidden channels relative to ``out_channels``.
    :param kernel_sizes: kernels of the two convs: ``(1, 3)`` in C3, ``(3, 3)`` in C2f.
    :param add_identity: add the input (only when ``in_channels == out_channels``).
    """

    def __init__(self, in_channels: int, out_channels: int, expansion: float = 1.0,
                 kernel_sizes: tuple[int, int] = (1, 3), add_identity: bool = True) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = ConvBNSiLU(in_channels, hidden, kernel_sizes[0])
        self.conv2 = ConvBNSiLU(hidden, out_channels, kernel_sizes[1])
        self.add_identity = add_identity and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class C3(nn.Module):
    """YOLOv5's CSP block: ``final(cat[blocks(main(x)), short(x)])``,
    ``(B, C_in, H, W) -> (B, C_out, H, W)``, with ``num_blocks`` 1x1-3x3 bottlenecks on
    ``C_out / 2`` channels.
    """

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int = 1,
                 add_identity: bool = True) -> None:
        super().__init__()
        hidden = int(out_channels * CSP_EXPANSION)
        self.main_conv = ConvBNSiLU(in_channels, hidden)
        self.short_conv = ConvBNSiLU(in_channels, hidden)
        self.blocks = nn.Sequential(*(
            DarknetBottleneck(hidden, hidden, 1.0, (1, 3), add_identity)
            for _ in range(num_blocks)))
        self.final_conv = ConvBNSiLU(2 * hidden, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.final_conv(torch.cat([self.blocks(self.main_conv(x)),
                                                 self.short_conv(x)], dim=1))
        return out


class C2f(nn.Module):
    """YOLOv8's CSP block with two convs: the 1x1 ``main`` conv's output is split in two
    halves of ``C_out / 2`` channels; each of ``num_blocks`` 3x3-3x3 bottlenecks runs on the
    previous output; all pieces are concatenated and fused by a 1x1 conv:
    ``(B, C_in, H, W) -> (B, C_out, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int = 1,
                 add_identity: bool = True) -> None:
        super().__init__()
        self.hidden = int(out_channels * CSP_EXPANSION)
        self.main_conv = ConvBNSiLU(in_channels, 2 * self.hidden)
        self.blocks = nn.ModuleList(
            DarknetBottleneck(self.hidden, self.hidden, 1.0, (3, 3), add_identity)
            for _ in range(num_blocks))
        self.final_conv = ConvBNSiLU((2 + num_blocks) * self.hidden, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        pieces = list(self.main_conv(x).split(self.hidden, dim=1))
        for block in self.blocks:
            pieces.append(block(pieces[-1]))
        out: Tensor = self.final_conv(torch.cat(pieces, dim=1))
        return out


def sppf(in_channels: int, out_channels: int) -> nn.Module:
    """core's SPPF (three chained 5x5 pools) with YOLO BatchNorm settings."""
    return yolo_norm_(SPPF(in_channels, out_channels, kernel_size=SPPF_KERNEL, num_pools=3))
