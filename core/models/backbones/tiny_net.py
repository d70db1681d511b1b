"""TinyNet: a plain conv-BN-ReLU backbone for fast CPU training on small images."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from core.errors import ConfigError
from core.models.backbones.freezing import FreezableBackbone
from core.models.enhance.insertion import build_enhance, modules_outside, parse_placements

KERNEL = 3
DOWNSAMPLE_STRIDE = 2
NUM_STEM_CONVS = 2  # two stride-2 convs: the first stage runs at stride 4, like a ResNet
ENHANCE_POSITION = "after_stage"


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution + BatchNorm + ReLU: ``(B, in, H, W) -> (B, out, H / stride, W / stride)``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, KERNEL, stride, KERNEL // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class TinyNet(FreezableBackbone):
    """Plain VGG-style network with ResNet-like strides (4, 8, 16, 32 for stages 0..3).

    Input ``(B, 3, H, W)``; output ``i`` for ``i`` in ``out_indices`` has shape
    ``(B, widths[i], ceil(H / 2 ** (i + 2)), ceil(W / 2 ** (i + 2)))``. Stage ``i`` is one
    stride-2 conv (identity stride for stage 0, which follows the stride-4 stem) followed by
    ``depths[i] - 1`` stride-1 convs. Dense 3x3 convolutions with few channels run fast on CPU.

    :param widths: channels of each stage.
    :param depths: convs per stage (>= 1).
    :param out_indices: stages whose outputs are returned, in increasing order.
    :param frozen_stages: -1 freezes nothing; 0 the stem; ``k`` the stem and stages ``0..k-1``.
    :param plugins: enhance layers run on the output of chosen stages:
        ``{cfg = {type = ...}, stages = [one flag per stage], position = "after_stage"}``
        (``stages`` defaults to all); they sit in ``stage_enhance.<stage>``.
    """

    def __init__(
        self,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        depths: tuple[int, ...] = (1, 2, 2, 2),
        out_indices: tuple[int, ...] = (1, 2, 3),
        frozen_stages: int = -1,
        plugins: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        if len(widths) != len(depths) or not widths:
            raise ConfigError(
                f"widths/depths: expected equal non-empty lengths, got "
                f"{len(widths)} and {len(depths)}"
            )
        if any(w < 1 for w in widths) or any(d < 1 for d in depths):
            raise ConfigError(f"widths/depths: expected positive ints, got {widths}, {depths}")
        num_stages = len(widths)
        if (
            not out_indices
            or list(out_indices) != sorted(set(out_indices))
            or any(i not in range(num_stages) for i in out_indices)
        ):
            raise ConfigError(
                f"out_indices: expected increasing indices in 0..{num_stages - 1}, "
                f"got {out_indices}"
            )
        placements = parse_placements(plugins, {ENHANCE_POSITION: num_stages})
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        stem_channels = widths[0] // 2 or 1
        self.stem = nn.Sequential(
            conv_bn_relu(3, stem_channels, DOWNSAMPLE_STRIDE),
            conv_bn_relu(stem_channels, widths[0], DOWNSAMPLE_STRIDE),
        )
        stages = []
        in_channels = widths[0]
        for stage, (width, depth) in enumerate(zip(widths, depths, strict=True)):
            if stage > self.out_indices[-1]:
                break
            stride = 1 if stage == 0 else DOWNSAMPLE_STRIDE
            convs = [conv_bn_relu(in_channels, width, stride)]
            convs += [conv_bn_relu(width, width) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*convs))
            in_channels = width
        self.stages = nn.ModuleList(stages)
        self.stage_enhance = nn.ModuleDict()
        for stage in range(len(stages)):
            layers = [
                build_enhance(p.cfg, widths[stage], f"{p.path}.cfg")
                for p in placements
                if p.applies(stage, ENHANCE_POSITION)
            ]
            if layers:
                self.stage_enhance[str(stage)] = nn.Sequential(*layers)
        self.out_channels = [widths[i] for i in self.out_indices]
        for m in modules_outside(self, [self.stage_enhance]):
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        self.freeze_stages()

    def frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 0:
            return []
        frozen: list[nn.Module] = [self.stem, *self.stages[: self.frozen_stages]]
        frozen += [m for i, m in self.stage_enhance.items() if int(i) < self.frozen_stages]
        return frozen

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """:param x: images ``(B, 3, H, W)``. :returns: one feature map per ``out_indices``."""
        x = self.stem(x)
        outs = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if str(index) in self.stage_enhance:
                x = self.stage_enhance[str(index)](x)
            if index in self.out_indices:
                outs.append(x)
        return tuple(outs)
