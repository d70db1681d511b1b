"""torchvision's ResNet blocks with enhance layers after chosen convolutions.

The blocks keep torchvision's parameter names (``conv1``, ``bn1``, ...); enhance layers live in
the ``enhance`` dict of each block (``layer2.0.enhance.after_conv3.0...``), so pretrained
weights still load and the new keys are recognisable.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck

#: (position, channels at that position) -> enhance layers to run there, in order.
EnhanceFactory = Callable[[str, int], list[nn.Module]]
#: Name of the dict holding a block's enhance layers (the prefix of their state-dict keys).
ENHANCE_ATTR = "enhance"


def build_positions(factory: EnhanceFactory | None, channels: dict[str, int]) -> nn.ModuleDict:
    """One ``nn.Sequential`` per position that gets at least one layer."""
    positions = nn.ModuleDict()
    if factory is None:
        return positions
    for position, num_channels in channels.items():
        layers = factory(position, num_channels)
        if layers:
            positions[position] = nn.Sequential(*layers)
    return positions


def run_position(positions: nn.ModuleDict, position: str, x: Tensor) -> Tensor:
    """Apply the layers at ``position`` (identity when there are none)."""
    return positions[position](x) if position in positions else x


class _EnhancedBlock:
    """The enhance positions of a torchvision residual block, which follows this class in the
    bases: ``POSITIONS[i - 1]`` follows ``conv{i}`` and ``bn{i}`` (and the ReLU of every conv
    but the last, whose position comes before the residual addition)."""

    POSITIONS: tuple[str, ...]
    expansion: int
    downsample: nn.Module | None
    relu: nn.Module

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        enhance: EnhanceFactory | None = None,
    ) -> None:
        # the torchvision block after this class in the bases
        super().__init__(inplanes, planes, stride, downsample)  # type: ignore[call-arg]
        channels = [planes] * (len(self.POSITIONS) - 1) + [planes * self.expansion]
        self.enhance = build_positions(enhance, dict(zip(self.POSITIONS, channels, strict=True)))

    def forward(self, x: Tensor) -> Tensor:
        """:param x: ``(B, inplanes, H, W)``.
        :returns: ``(B, planes * expansion, H / stride, W / stride)``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = x
        for index, position in enumerate(self.POSITIONS, start=1):
            out = getattr(self, f"bn{index}")(getattr(self, f"conv{index}")(out))
            if index < len(self.POSITIONS):
                out = self.relu(out)
            out = run_position(self.enhance, position, out)
        out += identity
        activated: Tensor = self.relu(out)
        return activated


class EnhancedBasicBlock(_EnhancedBlock, BasicBlock):  # type: ignore[misc]  # torchvision is untyped
    """BasicBlock (two 3x3 convs) with enhance layers ``after_conv1`` (after its ReLU) and
    ``after_conv2`` (after its norm, before the residual addition).

    ``(B, inplanes, H, W) -> (B, planes, H / stride, W / stride)``.
    """

    POSITIONS = ("after_conv1", "after_conv2")


class EnhancedBottleneck(_EnhancedBlock, Bottleneck):  # type: ignore[misc]  # torchvision is untyped
    """Bottleneck (1x1, 3x3, 1x1 convs) with enhance layers ``after_conv1`` and
    ``after_conv2`` (after their ReLU) and ``after_conv3`` (after its norm, before the residual
    addition), the positions of MMDetection's ResNet plugins.

    ``(B, inplanes, H, W) -> (B, 4 * planes, H / stride, W / stride)``.
    """

    POSITIONS = ("after_conv1", "after_conv2", "after_conv3")
