"""ResNet backbone built from torchvision's residual blocks (torchvision parameter names)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from core.errors import ConfigError, require_positive_int
from core.models.backbones.freezing import FreezableBackbone
from core.models.backbones.pretrained import load_pretrained
from core.models.backbones.resnet_blocks import (
    ENHANCE_ATTR,
    EnhancedBasicBlock,
    EnhancedBottleneck,
)
from core.models.enhance.insertion import (
    build_enhance,
    modules_outside,
    parse_flags,
    parse_placements,
)

Block = type[EnhancedBasicBlock] | type[EnhancedBottleneck]
# depth -> (block type, blocks per stage)
ARCH_SETTINGS: dict[int, tuple[Block, tuple[int, int, int, int]]] = {
    18: (EnhancedBasicBlock, (2, 2, 2, 2)),
    34: (EnhancedBasicBlock, (3, 4, 6, 3)),
    50: (EnhancedBottleneck, (3, 4, 6, 3)),
    101: (EnhancedBottleneck, (3, 4, 23, 3)),
}
NUM_STAGES = 4
STEM_KERNEL = 7
STEM_STRIDE = 2
# Checkpoint keys of the ImageNet classifier, unused by a backbone.
CLASSIFIER_PREFIXES = ("fc.",)
# State-dict keys of a plain conv; a ``dcn`` conv replacing it loads them from a checkpoint.
CONV_KEYS = ("weight", "bias")


class ResNet(FreezableBackbone):
    """ResNet-18/34/50/101 returning the outputs of the stages listed in ``out_indices``.

    Input ``(B, 3, H, W)``; stage ``i`` (0-based) has stride ``2 ** (i + 2)`` and
    ``base_channels * 2 ** i * expansion`` channels (expansion 1 for depth 18/34, 4 for 50/101),
    so output ``i`` has shape ``(B, C_i, ceil(H / 2 ** (i + 2)), ceil(W / 2 ** (i + 2)))``.
    Parameter names match torchvision's ResNet (``conv1``, ``bn1``, ``layer1`` ...), so its
    weights load directly.

    :param depth: 18, 34, 50 or 101.
    :param out_indices: stages whose outputs are returned, in increasing order.
    :param frozen_stages: -1 freezes nothing; 0 freezes the stem; ``k`` the stem and stages
        ``1..k``. Frozen parts get ``requires_grad=False`` and stay in eval mode.
    :param norm_eval: keep every BatchNorm in eval mode (frozen running statistics) in training.
    :param base_channels: width of the stem and first stage (64 in the standard ResNet); a
        smaller value gives a slim network for CPU training.
    :param init_cfg: ``{"type": "Pretrained", "checkpoint": "torchvision://resnet50"}`` or a
        local file path; None keeps the random initialisation. Parameters of enhance layers
        absent from the checkpoint are reported as newly initialised, not as missing.
    :param dcn: an ``enhance`` table for the deformable conv (``{type = "DCNv2"}``) that
        replaces ``conv2`` (the 3x3 conv of a Bottleneck, the second one of a BasicBlock) in
        every block of the stages selected by ``stage_with_dcn``; the backbone sets its
        channels, kernel, stride, padding and dilation.
    :param stage_with_dcn: one flag per stage.
    :param plugins: enhance layers inserted into every block of chosen stages:
        ``{cfg = {type = ...}, stages = [4 flags], position = "after_conv1" | "after_conv2" |
        "after_conv3"}`` (``after_conv3`` for Bottleneck only; ``stages`` defaults to all).
    """

    def __init__(
        self,
        depth: int = 50,
        out_indices: tuple[int, ...] = (0, 1, 2, 3),
        frozen_stages: int = -1,
        norm_eval: bool = False,
        base_channels: int = 64,
        init_cfg: dict[str, str] | None = None,
        dcn: dict[str, Any] | None = None,
        stage_with_dcn: tuple[bool, ...] = (False,) * NUM_STAGES,
        plugins: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        if depth not in ARCH_SETTINGS:
            raise ConfigError(f"depth: expected one of {sorted(ARCH_SETTINGS)}, got {depth}")
        if not out_indices or any(i not in range(NUM_STAGES) for i in out_indices):
            raise ConfigError(
                f"out_indices: expected indices in 0..{NUM_STAGES - 1}, got {out_indices}"
            )
        if list(out_indices) != sorted(set(out_indices)):
            raise ConfigError(f"out_indices: expected increasing unique indices, got {out_indices}")
        if frozen_stages not in range(-1, NUM_STAGES + 1):
            raise ConfigError(f"frozen_stages: expected -1..{NUM_STAGES}, got {frozen_stages}")
        require_positive_int("base_channels", base_channels)
        block, stage_blocks = ARCH_SETTINGS[depth]
        dcn_stages = parse_flags(stage_with_dcn, "stage_with_dcn", NUM_STAGES)
        if any(dcn_stages) and dcn is None:
            raise ConfigError("stage_with_dcn: selects stages but dcn is not set")
        if dcn is not None and not any(dcn_stages):
            raise ConfigError("dcn: set but stage_with_dcn selects no stage")
        self.dcn = dcn
        self.dcn_stages = dcn_stages
        self.placements = parse_placements(plugins, dict.fromkeys(block.POSITIONS, NUM_STAGES))
        self.depth = depth
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        self.conv1 = nn.Conv2d(
            3,
            base_channels,
            kernel_size=STEM_KERNEL,
            stride=STEM_STRIDE,
            padding=STEM_KERNEL // 2,
            bias=False,
        )
        self.bn1 = nn.BatchNorm2d(base_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.inplanes = base_channels
        # Stages after the last returned one are not built (they would get no gradient).
        self.num_built_stages = self.out_indices[-1] + 1
        stage_channels = []
        for stage, num_blocks in enumerate(stage_blocks[: self.num_built_stages]):
            planes = base_channels * 2**stage
            layer = self._make_layer(
                block, planes, num_blocks, stride=1 if stage == 0 else 2, stage=stage
            )
            self.add_module(f"layer{stage + 1}", layer)
            stage_channels.append(planes * block.expansion)
        self.out_channels = [stage_channels[i] for i in self.out_indices]
        self._init_weights()
        if init_cfg is not None:
            unbuilt = tuple(f"layer{i + 1}." for i in range(self.num_built_stages, NUM_STAGES))
            load_pretrained(
                self,
                dict(init_cfg),
                ignore_prefixes=CLASSIFIER_PREFIXES + unbuilt,
                new_prefixes=self.new_key_prefixes(),
            )
        self.freeze_stages()

    def _make_layer(
        self, block: Block, planes: int, num_blocks: int, stride: int, stage: int
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(
                    self.inplanes,
                    planes * block.expansion,
                    kernel_size=1,
                    stride=stride,
                    bias=False,
                ),
                nn.BatchNorm2d(planes * block.expansion),
            )
        def enhance(position: str, channels: int) -> list[nn.Module]:
            return [
                build_enhance(p.cfg, channels, f"{p.path}.cfg")
                for p in self.placements
                if p.applies(stage, position)
            ]

        layers = [block(self.inplanes, planes, stride, downsample, enhance)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, enhance=enhance) for _ in range(1, num_blocks)]
        if self.dcn is not None and self.dcn_stages[stage]:
            for layer in layers:
                layer.conv2 = self._deformable(layer.conv2)
        return nn.Sequential(*layers)

    def _deformable(self, conv: nn.Conv2d) -> nn.Module:
        """The ``dcn`` layer replacing ``conv`` (same channels, kernel, stride, dilation)."""
        assert self.dcn is not None
        return build_enhance(
            self.dcn,
            conv.in_channels,
            "dcn",
            out_channels=conv.out_channels,
            kernel_size=conv.kernel_size[0],
            stride=conv.stride[0],
            padding=conv.padding[0],
            dilation=conv.dilation[0],
        )

    def enhance_layers(self) -> list[tuple[str, nn.Module]]:
        """``(name, module)`` of every inserted layer: the enhance positions of each block and
        each ``dcn`` conv."""
        named: list[tuple[str, nn.Module]] = []
        for stage in range(self.num_built_stages):
            for index, block in enumerate(getattr(self, f"layer{stage + 1}")):
                name = f"layer{stage + 1}.{index}"
                enhance = getattr(block, ENHANCE_ATTR)
                if len(enhance):
                    named.append((f"{name}.{ENHANCE_ATTR}", enhance))
                if self.dcn is not None and self.dcn_stages[stage]:
                    named.append((f"{name}.conv2", block.conv2))
        return named

    def new_key_prefixes(self) -> tuple[str, ...]:
        """State-dict keys (or prefixes) a plain ResNet checkpoint does not have: all of an
        enhance position's, and those of a ``dcn`` conv besides the plain conv's weights."""
        prefixes = []
        for name, module in self.enhance_layers():
            if name.endswith(f".{ENHANCE_ATTR}"):
                prefixes.append(f"{name}.")
            else:
                prefixes += [f"{name}.{key}" for key in module.state_dict() if key not in CONV_KEYS]
        return tuple(prefixes)

    def _init_weights(self) -> None:
        """He initialisation as in torchvision's ResNet; enhance layers keep their own."""
        inserted = [module for _, module in self.enhance_layers()]
        for m in modules_outside(self, inserted):
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 0:
            return []
        modules: list[nn.Module] = [self.conv1, self.bn1]
        last_frozen = min(self.frozen_stages, self.num_built_stages)
        modules += [getattr(self, f"layer{i}") for i in range(1, last_frozen + 1)]
        return modules

    def train(self, mode: bool = True) -> ResNet:
        """Switch mode, keeping frozen stages (and all norms if ``norm_eval``) in eval mode."""
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """:param x: images ``(B, 3, H, W)``. :returns: one feature map per ``out_indices``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for stage in range(self.num_built_stages):
            x = getattr(self, f"layer{stage + 1}")(x)
            if stage in self.out_indices:
                outs.append(x)
        return tuple(outs)
