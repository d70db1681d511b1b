"""The YOLOX backbone: CSPDarknet with C3-style CSP layers (3, 9, 9, 3 bottlenecks before
scaling) and SPP (5, 9, 13) before the last CSP layer.

It reuses the YOLOv5 building blocks of :mod:`plugdet_yolo.layers` (conv-BN-SiLU, C3,
width/depth rounding) and core's :class:`core.models.enhance.SPP`. YOLOX's Focus stem (a 2x2
space-to-depth followed by a 3x3 conv on 12 channels) is the stride-2 6x6 conv used here:
both map every output pixel from the same 6x6 input window with ``3 * 36 = 12 * 9`` weights
per output channel, so the parameter counts are identical.
"""

from __future__ import annotations

from torch import nn

from core.api import SPP
from plugdet_yolo.layers import (
    C3,
    ConvBNSiLU,
    StagedBackbone,
    make_divisible,
    make_round,
    yolo_norm_,
)

STEM_CHANNELS = 64
STEM_KERNEL = 6  # the Focus stem as one conv (see the module doc)
STEM_PADDING = 2
DOWNSAMPLE_KERNEL = 3
DOWNSAMPLE_STRIDE = 2
#: Per stage: output channels and bottlenecks before scaling.
YOLOX_STAGES = ((128, 3), (256, 9), (512, 9), (1024, 3))
SPP_KERNELS = (5, 9, 13)
NUM_LAYERS = 1 + len(YOLOX_STAGES)


class YOLOXCSPDarknet(StagedBackbone):
    """Stem, then four stages of (stride-2 3x3 conv, C3); the last stage is (stride-2 conv,
    SPP, C3 without identity shortcuts), as in YOLOX.

    Input ``(B, 3, H, W)``; output ``i`` of ``out_indices`` is
    ``(B, out_channels[k], H / 2 ** (i + 1), W / 2 ** (i + 1))``. Published sizes
    (``deepen_factor``/``widen_factor``): tiny 0.33/0.375, s 0.33/0.5, m 0.67/0.75, l 1/1,
    x 1.33/1.25.

    :param deepen_factor: multiplies the bottlenecks of every stage.
    :param widen_factor: multiplies every channel count (rounded up to a multiple of 8).
    :param out_indices: layers returned (0 the stem, 1..4 the stages), increasing.
    :param spp_kernel_sizes: max-pool windows of the SPP layer.
    """

    def __init__(self, deepen_factor: float = 1.0, widen_factor: float = 1.0,
                 out_indices: tuple[int, ...] = (2, 3, 4),
                 spp_kernel_sizes: tuple[int, ...] = SPP_KERNELS) -> None:
        super().__init__(deepen_factor, widen_factor, out_indices, NUM_LAYERS)
        channels = [make_divisible(STEM_CHANNELS, widen_factor)]
        stem = ConvBNSiLU(3, channels[0], STEM_KERNEL, DOWNSAMPLE_STRIDE, STEM_PADDING)
        layers: list[nn.Module] = []
        for index, (out, num_blocks) in enumerate(YOLOX_STAGES):
            last = index == len(YOLOX_STAGES) - 1
            out = make_divisible(out, widen_factor)
            modules: list[nn.Module] = [
                ConvBNSiLU(channels[-1], out, DOWNSAMPLE_KERNEL, DOWNSAMPLE_STRIDE)]
            if last:
                modules.append(yolo_norm_(SPP(out, out, tuple(spp_kernel_sizes))))
            modules.append(C3(out, out, make_round(num_blocks, deepen_factor),
                              add_identity=not last))
            layers.append(nn.Sequential(*modules))
            channels.append(out)
        self.set_layers(stem, layers, channels)
