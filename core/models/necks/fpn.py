"""Feature Pyramid Network (Lin et al., 2017) with optional extra stride-2 levels."""

from __future__ import annotations

from typing import Any, Literal

import torch.nn.functional as F
from torch import Tensor, nn

from core.errors import ConfigError
from core.models.enhance.insertion import Placement, build_enhance, parse_placements

LATERAL_KERNEL = 1
OUTPUT_KERNEL = 3
EXTRA_STRIDE = 2
UPSAMPLE_MODE = "nearest"
ExtraConvSource = Literal["on_input", "on_output", False]
ON_INPUT = "on_input"
ON_OUTPUT = "on_output"
#: Normalisation after the lateral and output convs: "BN" is BatchNorm.
FPNNorm = Literal["BN"]


class FPN(nn.Module):
    """Top-down feature pyramid.

    Inputs ``in_channels[i]``-channel maps ``(B, C_i, H_i, W_i)`` with strides doubling per level;
    levels ``start_level..`` are used. Returns ``num_outs`` maps ``(B, out_channels, H_j, W_j)``:
    one per used input level, then extra levels (each half the size of the previous) made by
    stride-2 3x3 convs when ``add_extra_convs`` is set, or by stride-2 max pooling otherwise.

    :param in_channels: channels of each backbone output.
    :param out_channels: channels of every pyramid level.
    :param num_outs: number of returned levels (>= number of used inputs).
    :param start_level: index of the first backbone output used.
    :param add_extra_convs: False (max pooling), "on_input" (the first extra conv reads the last
        used backbone output, RetinaNet in MMDetection) or "on_output" (it reads the last
        pyramid output, RetinaNet in torchvision).
    :param relu_before_extra_convs: apply ReLU before every extra conv but the first.
    :param norm: None (convs with bias) or "BN": every lateral and output conv is a conv
        without bias followed by BatchNorm (torchvision's ``fasterrcnn_resnet50_fpn_v2``); the
        extra convs keep their bias and have no norm.
    :param plugins: enhance layers between levels: ``{cfg = {type = ...}, levels = [flags],
        position = "on_input" | "on_output"}``. ``on_input`` runs on the used backbone maps
        (one flag per used input) before the lateral convs; ``on_output`` on the returned maps
        (one flag per output), after the extra levels are computed. ``levels`` defaults to all.
    """

    def __init__(
        self,
        in_channels: list[int],
        out_channels: int = 256,
        num_outs: int = 5,
        start_level: int = 0,
        add_extra_convs: ExtraConvSource = False,
        relu_before_extra_convs: bool = False,
        plugins: list[dict[str, Any]] | None = None,
        norm: FPNNorm | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= start_level < len(in_channels):
            raise ConfigError(f"start_level: expected 0..{len(in_channels) - 1}, got {start_level}")
        used = len(in_channels) - start_level
        if num_outs < used:
            raise ConfigError(f"num_outs: expected >= {used} (used inputs), got {num_outs}")
        if add_extra_convs not in (False, "on_input", "on_output"):
            raise ConfigError(
                "add_extra_convs: expected false, 'on_input' or 'on_output', "
                f"got {add_extra_convs!r}"
            )
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.start_level = start_level
        self.add_extra_convs = add_extra_convs
        self.relu_before_extra_convs = relu_before_extra_convs
        if norm not in (None, "BN"):
            raise ConfigError(f"norm: expected none or 'BN', got {norm!r}")
        self.norm = norm
        self.lateral_convs = nn.ModuleList(
            self._conv(c, out_channels, LATERAL_KERNEL) for c in self.in_channels[start_level:]
        )
        self.fpn_convs = nn.ModuleList(
            self._conv(out_channels, out_channels, OUTPUT_KERNEL) for _ in range(used)
        )
        self.extra_convs = nn.ModuleList()
        if add_extra_convs:
            for index in range(num_outs - used):
                on_input = index == 0 and add_extra_convs == "on_input"
                source = self.in_channels[-1] if on_input else out_channels
                self.extra_convs.append(
                    nn.Conv2d(source, out_channels, OUTPUT_KERNEL, EXTRA_STRIDE, OUTPUT_KERNEL // 2)
                )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        placements = parse_placements(
            plugins, {ON_INPUT: used, ON_OUTPUT: num_outs}, flags_key="levels"
        )
        channels = {ON_INPUT: self.in_channels[start_level:], ON_OUTPUT: [out_channels] * num_outs}
        self.input_enhance, self.output_enhance = (
            self._enhance_levels(placements, position, channels[position])
            for position in (ON_INPUT, ON_OUTPUT)
        )

    def _conv(self, in_channels: int, out_channels: int, kernel: int) -> nn.Module:
        """A stride-1 conv keeping the size, followed by the norm when there is one."""
        if self.norm is None:
            return nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    @staticmethod
    def _enhance_levels(
        placements: list[Placement], position: str, channels: list[int]
    ) -> nn.ModuleDict:
        """Level index -> the enhance layers placed there, for levels that have some."""
        levels = nn.ModuleDict()
        for level, num_channels in enumerate(channels):
            layers = [
                build_enhance(p.cfg, num_channels, f"{p.path}.cfg")
                for p in placements
                if p.applies(level, position)
            ]
            if layers:
                levels[str(level)] = nn.Sequential(*layers)
        return levels

    @staticmethod
    def _run_levels(levels: nn.ModuleDict, maps: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return tuple(levels[str(i)](x) if str(i) in levels else x for i, x in enumerate(maps))

    def forward(self, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """:param inputs: backbone maps ``(B, in_channels[i], H_i, W_i)``.
        :returns: ``num_outs`` maps ``(B, out_channels, H_j, W_j)``, finest first."""
        if len(inputs) != len(self.in_channels):
            raise ValueError(f"FPN expects {len(self.in_channels)} inputs, got {len(inputs)}")
        used_inputs = self._run_levels(self.input_enhance, inputs[self.start_level :])
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, used_inputs, strict=True)]
        for i in range(len(laterals) - 1, 0, -1):
            top_down = F.interpolate(
                laterals[i], size=laterals[i - 1].shape[-2:], mode=UPSAMPLE_MODE
            )
            laterals[i - 1] = laterals[i - 1] + top_down
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals, strict=True)]
        num_extra = self.num_outs - len(outs)
        if num_extra and not self.add_extra_convs:
            for _ in range(num_extra):
                outs.append(F.max_pool2d(outs[-1], 1, stride=EXTRA_STRIDE))
        for index, conv in enumerate(self.extra_convs):
            if index == 0:
                source = used_inputs[-1] if self.add_extra_convs == "on_input" else outs[-1]
            else:
                source = F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]
            outs.append(conv(source))
        return self._run_levels(self.output_enhance, tuple(outs))
