"""RTMDet's neck: YOLOv5's path aggregation with CSPNeXt layers, then one 3x3 conv per level
to a common width."""

from __future__ import annotations

from torch import Tensor, nn

from plugdet_yolo.cspnext import CSPNeXtLayer
from plugdet_yolo.layers import ConvBNSiLU, make_divisible
from plugdet_yolo.necks import YOLOv5PAFPN

OUT_KERNEL = 3


class CSPNeXtPAFPN(YOLOv5PAFPN):
    """The fusion of :class:`~plugdet_yolo.necks.YOLOv5PAFPN` (1x1 reduction of the coarsest
    input and after each top-down fusion but the last, stride-2 3x3 downsampling) with
    CSPNeXt layers (no identity shortcuts, no channel attention) as the fusions; the
    bottom-up map of level ``i`` keeps ``in_channels[i]`` channels and a 3x3 conv-BN-SiLU
    maps it to ``out_channels``.

    Inputs ``(B, in_channels[i] * widen, H_i, W_i)``, finest first; outputs
    ``(B, out_channels * widen, H_i, W_i)`` (widened channels rounded up to a multiple of 8;
    ``self.out_channels`` holds them per level).

    :param in_channels: channels of the backbone maps before widening.
    :param out_channels: channels of every output before widening.
    :param deepen_factor: multiplies ``num_csp_blocks`` (at least 1).
    :param widen_factor: multiplies every channel count.
    :param num_csp_blocks: CSPNeXt blocks per CSP layer before deepening.
    """

    def __init__(self, in_channels: tuple[int, ...] = (256, 512, 1024),
                 out_channels: int = 256, deepen_factor: float = 1.0,
                 widen_factor: float = 1.0, num_csp_blocks: int = 3) -> None:
        super().__init__(in_channels, in_channels, deepen_factor, widen_factor,
                         num_csp_blocks)
        width = make_divisible(out_channels, widen_factor)
        self.out_convs = nn.ModuleList(ConvBNSiLU(c, width, OUT_KERNEL)
                                       for c in self.out_channels)
        self.out_channels = [width] * len(self.in_channels)

    def build_csp(self, in_channels: int, out_channels: int) -> nn.Module:
        return CSPNeXtLayer(in_channels, out_channels, self.num_blocks, add_identity=False)

    def forward(self, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """:param inputs: ``L`` backbone maps, finest first. :returns: ``L`` maps."""
        return tuple(conv(x) for conv, x in zip(self.out_convs, super().forward(inputs),
                                                  strict=True))
