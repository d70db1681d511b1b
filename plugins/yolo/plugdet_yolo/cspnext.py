"""RTMDet's building blocks and backbone: the CSPNeXt block (3x3 conv, then a 5x5 depthwise
separable conv), the CSPNeXt CSP layer with optional channel attention, and the CSPNeXt (P5)
backbone.

BatchNorms use the YOLO settings of :mod:`plugdet_yolo.layers` (eps 1e-3, momentum 0.03, as
MMYOLO's RTMDet; MMDetection keeps torch's defaults).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from core.api import InferenceInPlaceSiLU
from plugdet_yolo.layers import (
    BN_EPS,
    BN_MOMENTUM,
    ConvBNSiLU,
    StagedBackbone,
    make_divisible,
    make_round,
    sppf,
)

DEPTHWISE_KERNEL = 5
DOWNSAMPLE_KERNEL = 3
DOWNSAMPLE_STRIDE = 2
STEM_CHANNELS = 64
#: Hidden channels of a CSP layer relative to its output.
CSP_EXPANSION = 0.5
#: P5 arch, per stage: output channels, blocks (before scaling), identity shortcuts, SPPF.
P5_STAGES = ((128, 3, True, False), (256, 6, True, False), (512, 6, True, False),
             (1024, 3, False, True))
NUM_LAYERS = 1 + len(P5_STAGES)


class DepthwiseSeparableConv(nn.Sequential):
    """Depthwise ``k x k`` conv-BN-SiLU, then pointwise 1x1 conv-BN-SiLU:
    ``(B, C_in, H, W) -> (B, C_out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, in_channels, kernel_size, padding=kernel_size // 2,
                      groups=in_channels, bias=False),
            nn.BatchNorm2d(in_channels, eps=BN_EPS, momentum=BN_MOMENTUM),
            InferenceInPlaceSiLU(),
            ConvBNSiLU(in_channels, out_channels, 1),
        )


class CSPNeXtBlock(nn.Module):
    """``x -> dwsep5x5(conv3x3(x)) (+ x)``: ``(B, C_in, H, W) -> (B, C_out, H, W)``; the
    identity is added only when ``add_identity`` and ``C_in == C_out``."""

    def __init__(self, in_channels: int, out_channels: int, add_identity: bool = True) -> None:
        super().__init__()
        self.conv1 = ConvBNSiLU(in_channels, out_channels, 3)
        self.conv2 = DepthwiseSeparableConv(out_channels, out_channels, DEPTHWISE_KERNEL)
        self.add_identity = add_identity and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class ChannelAttention(nn.Module):
    """``x * hardsigmoid(fc(mean_hw(x)))`` with a 1x1 conv (with bias) ``fc``:
    ``(B, C, H, W) -> (B, C, H, W)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)
        self.act = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        gate: Tensor = self.act(self.fc(x.mean(dim=(2, 3), keepdim=True)))
        return x * gate


class CSPNeXtLayer(nn.Module):
    """``final(attention(cat[blocks(main(x)), short(x)]))``: ``(B, C_in, H, W) ->
    (B, C_out, H, W)`` with ``num_blocks`` CSPNeXt blocks on ``C_out / 2`` channels and 1x1
    ``main``, ``short`` and ``final`` convs.

    :param channel_attention: apply :class:`ChannelAttention` to the concatenation.
    """

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int = 1,
                 add_identity: bool = True, channel_attention: bool = False) -> None:
        super().__init__()
        hidden = int(out_channels * CSP_EXPANSION)
        self.main_conv = ConvBNSiLU(in_channels, hidden)
        self.short_conv = ConvBNSiLU(in_channels, hidden)
        self.blocks = nn.Sequential(*(CSPNeXtBlock(hidden, hidden, add_identity)
                                      for _ in range(num_blocks)))
        self.attention = ChannelAttention(2 * hidden) if channel_attention else nn.Identity()
        self.final_conv = ConvBNSiLU(2 * hidden, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        fused = torch.cat([self.blocks(self.main_conv(x)), self.short_conv(x)], dim=1)
        out: Tensor = self.final_conv(self.attention(fused))
        return out


class CSPNeXt(StagedBackbone):
    """RTMDet's backbone (P5): a stem of three 3x3 conv-BN-SiLU (stride 2, 1, 1; the first
    two with half the stem channels), then four stages of (stride-2 3x3 conv, [SPPF in the
    last stage], CSPNeXt layer with channel attention).

    Input ``(B, 3, H, W)``; layer ``0`` is the stem (stride 2), layer ``i`` in 1..4 the stage
    of stride ``2 ** (i + 1)``; output ``k`` is ``(B, out_channels[k], H / s, W / s)``. The
    published sizes are tiny 0.167 / 0.375, s 0.33 / 0.5, m 0.67 / 0.75, l 1 / 1,
    x 1.33 / 1.25 (deepen / widen).

    :param deepen_factor: multiplies the blocks of every stage (at least 1 each).
    :param widen_factor: multiplies every channel count (rounded up to a multiple of 8).
    :param out_indices: layers returned, increasing; ``(2, 3, 4)`` gives strides 8, 16, 32.
    :param channel_attention: channel attention in the stages' CSP layers.
    """

    def __init__(self, deepen_factor: float = 1.0, widen_factor: float = 1.0,
                 out_indices: tuple[int, ...] = (2, 3, 4),
                 channel_attention: bool = True) -> None:
        super().__init__(deepen_factor, widen_factor, out_indices, NUM_LAYERS)
        stem = make_divisible(STEM_CHANNELS, widen_factor)
        stem_layers = nn.Sequential(
            ConvBNSiLU(3, stem // 2, 3, DOWNSAMPLE_STRIDE),
            ConvBNSiLU(stem // 2, stem // 2, 3),
            ConvBNSiLU(stem // 2, stem, 3),
        )
        channels = [stem]
        stages: list[nn.Module] = []
        for out, num_blocks, add_identity, use_sppf in P5_STAGES:
            out = make_divisible(out, widen_factor)
            modules: list[nn.Module] = [
                ConvBNSiLU(channels[-1], out, DOWNSAMPLE_KERNEL, DOWNSAMPLE_STRIDE)]
            if use_sppf:
                modules.append(sppf(out, out))
            modules.append(CSPNeXtLayer(out, out, make_round(num_blocks, deepen_factor),
                                        add_identity, channel_attention))
            stages.append(nn.Sequential(*modules))
            channels.append(out)
        self.set_layers(stem_layers, stages, channels)
