"""CSPDarknet backbones of YOLOv5 (C3 blocks, 6x6 stem) and YOLOv8 (C2f blocks, 3x3 stem).

Both are scaled by ``deepen_factor`` (blocks per stage) and ``widen_factor`` (channels); the
published sizes are n 0.33/0.25, s 0.33/0.5, m 0.67/0.75, l 1/1, x 1.33/1.25. Layer ``0`` is
the stride-2 stem, layer ``i`` in 1..4 the stage of stride ``2 ** (i + 1)``; the default
``out_indices = (2, 3, 4)`` returns strides 8, 16 and 32.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from plugdet_yolo.layers import (
    C3,
    C2f,
    ConvBNSiLU,
    StagedBackbone,
    make_divisible,
    make_round,
    sppf,
)

DOWNSAMPLE_KERNEL = 3
DOWNSAMPLE_STRIDE = 2
STEM_CHANNELS = 64
#: Per stage: output channels and blocks before scaling (inputs are the previous outputs).
YOLOV5_STAGES = ((128, 3), (256, 6), (512, 9), (1024, 3))
YOLOV8_STAGES = ((128, 3), (256, 6), (512, 6), (1024, 3))
NUM_LAYERS = 1 + len(YOLOV5_STAGES)

Block = Callable[[int, int, int, bool], nn.Module]


class CSPDarknet(StagedBackbone):
    """Stem conv, then four stages of (stride-2 3x3 conv, CSP block), SPPF closing the last.

    Input ``(B, 3, H, W)``; output ``i`` of ``out_indices`` is
    ``(B, out_channels[k], H / 2 ** (i + 1), W / 2 ** (i + 1))``.

    :param stages: per stage ``(channels, blocks)`` before scaling.
    :param block: ``block(in, out, num_blocks, add_identity)``, the CSP block.
    :param stem_kernel: kernel of the stride-2 stem conv (padded by ``(kernel - 1) // 2``,
        so an even input size is halved).
    :param deepen_factor: multiplies the blocks of every stage.
    :param widen_factor: multiplies every channel count (rounded up to a multiple of 8).
    :param out_indices: layers returned (0 the stem, 1..4 the stages), increasing.
    :param last_stage_out_channels: channels of the last stage before widening.
    """

    def __init__(self, stages: tuple[tuple[int, int], ...], block: Block, stem_kernel: int,
                 deepen_factor: float, widen_factor: float, out_indices: tuple[int, ...],
                 last_stage_out_channels: int) -> None:
        super().__init__(deepen_factor, widen_factor, out_indices, NUM_LAYERS)
        stem_channels = make_divisible(STEM_CHANNELS, widen_factor)
        stem = ConvBNSiLU(3, stem_channels, stem_kernel, DOWNSAMPLE_STRIDE,
                          (stem_kernel - 1) // 2)
        channels = [stem_channels]
        layers: list[nn.Module] = []
        for index, (out, num_blocks) in enumerate(stages):
            last = index == len(stages) - 1
            out = make_divisible(last_stage_out_channels if last else out, widen_factor)
            modules = [
                ConvBNSiLU(channels[-1], out, DOWNSAMPLE_KERNEL, DOWNSAMPLE_STRIDE),
                block(out, out, make_round(num_blocks, deepen_factor), True),
            ]
            if last:
                modules.append(sppf(out, out))
            layers.append(nn.Sequential(*modules))
            channels.append(out)
        self.set_layers(stem, layers, channels)


class YOLOv5CSPDarknet(CSPDarknet):
    """YOLOv5 (v6.0+) backbone: 6x6 stride-2 stem, C3 blocks (3, 6, 9, 3 before scaling),
    SPPF; see :class:`CSPDarknet` for the parameters and shapes."""

    def __init__(self, deepen_factor: float = 1.0, widen_factor: float = 1.0,
                 out_indices: tuple[int, ...] = (2, 3, 4),
                 last_stage_out_channels: int = 1024) -> None:
        super().__init__(YOLOV5_STAGES, C3, 6, deepen_factor, widen_factor, out_indices,
                         last_stage_out_channels)


class YOLOv8CSPDarknet(CSPDarknet):
    """YOLOv8 backbone: 3x3 stride-2 stem, C2f blocks (3, 6, 6, 3 before scaling), SPPF.

    ``last_stage_out_channels`` is 1024 for n and s, 768 for m, 512 for l and x (before
    widening); see :class:`CSPDarknet` for the parameters and shapes.
    """

    def __init__(self, deepen_factor: float = 1.0, widen_factor: float = 1.0,
                 out_indices: tuple[int, ...] = (2, 3, 4),
                 last_stage_out_channels: int = 1024) -> None:
        super().__init__(YOLOV8_STAGES, C2f, 3, deepen_factor, widen_factor, out_indices,
                         last_stage_out_channels)
