"""Path-aggregation FPNs of YOLOv5 (C3 blocks, 1x1 reductions before upsampling) and YOLOv8
(C2f blocks, no reductions).

Both take the backbone's maps finest first, run a top-down pass (upsample the coarser map,
concatenate it with the finer input, fuse) and a bottom-up pass (stride-2 3x3 conv of the finer
output, concatenate with the top-down map of the next level, fuse), and return one map per
input level. Channel lists are given before widening, like the backbones'.
"""

from __future__ import annotations

import abc

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.api import ConfigError
from plugdet_yolo.layers import C3, C2f, ConvBNSiLU, check_factors, make_divisible, make_round

DOWNSAMPLE_KERNEL = 3
DOWNSAMPLE_STRIDE = 2
UPSAMPLE_MODE = "nearest"


class PAFPN(nn.Module, metaclass=abc.ABCMeta):
    """Top-down then bottom-up fusion of ``L >= 2`` levels.

    Inputs ``(B, in_channels[i] * widen, H_i, W_i)`` with ``H_i = 2 H_{i+1}``; outputs
    ``(B, out_channels[i] * widen, H_i, W_i)`` (widened channels rounded up to a multiple
    of 8; the widened values are in ``self.out_channels``).

    :param in_channels: channels of the backbone maps before widening.
    :param out_channels: channels of the outputs before widening.
    :param deepen_factor: multiplies ``num_csp_blocks``.
    :param widen_factor: multiplies every channel count.
    :param num_csp_blocks: bottlenecks per CSP block before deepening.
    """

    def __init__(self, in_channels: tuple[int, ...] = (256, 512, 1024),
                 out_channels: tuple[int, ...] = (256, 512, 1024),
                 deepen_factor: float = 1.0, widen_factor: float = 1.0,
                 num_csp_blocks: int = 3) -> None:
        super().__init__()
        check_factors(deepen_factor, widen_factor)
        if len(in_channels) < 2 or len(out_channels) != len(in_channels):
            raise ConfigError(f"in_channels/out_channels: expected equal lengths >= 2, got "
                              f"{list(in_channels)} and {list(out_channels)}")
        if num_csp_blocks < 1:
            raise ConfigError(f"num_csp_blocks: expected a positive int, got {num_csp_blocks}")
        self.in_channels = [make_divisible(c, widen_factor) for c in in_channels]
        self.out_channels = [make_divisible(c, widen_factor) for c in out_channels]
        self.num_blocks = make_round(num_csp_blocks, deepen_factor)
        levels = len(in_channels)
        self.reduce_layers = nn.ModuleList(self.build_reduce_layer(i) for i in range(levels))
        # channels of the top-down maps, coarsest first while building
        inner = self.reduced_channels()
        high = inner[-1]
        top_down: list[nn.Module] = []
        for idx in range(levels - 1, 0, -1):
            layer, high = self.build_top_down_layer(idx, high + inner[idx - 1])
            top_down.append(layer)
            inner[idx - 1] = high
        self.top_down_layers = nn.ModuleList(top_down)
        self.downsample_layers = nn.ModuleList()
        self.bottom_up_layers = nn.ModuleList()
        low = inner[0]
        for idx in range(levels - 1):
            self.downsample_layers.append(
                ConvBNSiLU(low, low, DOWNSAMPLE_KERNEL, DOWNSAMPLE_STRIDE))
            self.bottom_up_layers.append(self.build_csp(low + inner[idx + 1],
                                                        self.out_channels[idx + 1]))
            low = self.out_channels[idx + 1]

    @abc.abstractmethod
    def build_csp(self, in_channels: int, out_channels: int) -> nn.Module:
        """The CSP block fusing a concatenation (without identity shortcuts)."""

    @abc.abstractmethod
    def build_reduce_layer(self, idx: int) -> nn.Module:
        """The layer applied to input ``idx`` before the top-down pass."""

    @abc.abstractmethod
    def reduced_channels(self) -> list[int]:
        """Channels of each input after its reduce layer."""

    @abc.abstractmethod
    def build_top_down_layer(self, idx: int, in_channels: int) -> tuple[nn.Module, int]:
        """The fusion of level ``idx``'s upsampled map with level ``idx - 1`` (``in_channels``
        in all) and its output channels."""

    def forward(self, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """:param inputs: ``L`` backbone maps, finest first. :returns: ``L`` maps."""
        if len(inputs) != len(self.in_channels):
            raise ValueError(f"{type(self).__name__} expects {len(self.in_channels)} inputs, "
                             f"got {len(inputs)}")
        reduced = [layer(x) for layer, x in zip(self.reduce_layers, inputs, strict=True)]
        inner = [reduced[-1]]
        for layer, idx in zip(self.top_down_layers, range(len(inputs) - 1, 0, -1), strict=True):
            low = reduced[idx - 1]
            high = F.interpolate(inner[0], size=low.shape[-2:], mode=UPSAMPLE_MODE)
            inner.insert(0, layer(torch.cat([high, low], dim=1)))
        outs = [inner[0]]
        for idx, (down, fuse) in enumerate(zip(self.downsample_layers, self.bottom_up_layers,
                                               strict=True)):
            outs.append(fuse(torch.cat([down(outs[-1]), inner[idx + 1]], dim=1)))
        return tuple(outs)


class YOLOv5PAFPN(PAFPN):
    """YOLOv5's neck: the coarsest input is reduced by a 1x1 conv to the next level's
    channels; each top-down C3 but the last is followed by a 1x1 conv to the next finer
    level's channels. See :class:`PAFPN` for the parameters and shapes."""

    def build_csp(self, in_channels: int, out_channels: int) -> nn.Module:
        return C3(in_channels, out_channels, self.num_blocks, add_identity=False)

    def build_reduce_layer(self, idx: int) -> nn.Module:
        if idx == len(self.in_channels) - 1:
            return ConvBNSiLU(self.in_channels[idx], self.in_channels[idx - 1])
        return nn.Identity()

    def reduced_channels(self) -> list[int]:
        return [*self.in_channels[:-1], self.in_channels[-2]]

    def build_top_down_layer(self, idx: int, in_channels: int) -> tuple[nn.Module, int]:
        if idx == 1:
            return self.build_csp(in_channels, self.out_channels[0]), self.out_channels[0]
        width, finer = self.in_channels[idx - 1], self.in_channels[idx - 2]
        return nn.Sequential(self.build_csp(in_channels, width), ConvBNSiLU(width, finer)), finer


class YOLOv8PAFPN(PAFPN):
    """YOLOv8's neck: C2f fusions, no reduce convs; the top-down map of level ``i`` has
    ``out_channels[i]`` channels. See :class:`PAFPN` for the parameters and shapes."""

    def build_csp(self, in_channels: int, out_channels: int) -> nn.Module:
        return C2f(in_channels, out_channels, self.num_blocks, add_identity=False)

    def build_reduce_layer(self, idx: int) -> nn.Module:
        return nn.Identity()

    def reduced_channels(self) -> list[int]:
        return list(self.in_channels)

    def build_top_down_layer(self, idx: int, in_channels: int) -> tuple[nn.Module, int]:
        out = self.out_channels[idx - 1]
        return self.build_csp(in_channels, out), out
