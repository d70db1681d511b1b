"""ResNet-vd: the ResNet variant with a three-conv stem and average-pooled shortcuts (RT-DETR's
backbone, ``PResNet`` of its reference code, whose module names it keeps)."""

from __future__ import annotations

from torch import Tensor, nn
from torchvision.ops.misc import FrozenBatchNorm2d

from core.api import ConfigError

# depth -> (bottleneck blocks, blocks per stage)
ARCH_SETTINGS: dict[int, tuple[bool, tuple[int, int, int, int]]] = {
    18: (False, (2, 2, 2, 2)),
    34: (False, (3, 4, 6, 3)),
    50: (True, (3, 4, 6, 3)),
    101: (True, (3, 4, 23, 3)),
}
BOTTLENECK_EXPANSION = 4
NUM_STAGES = 4


class ConvNorm(nn.Sequential):
    """``k x k`` convolution (no bias, "same" padding) -> BatchNorm -> optional ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 relu: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                              padding=(kernel_size - 1) // 2, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        if relu:
            self.act = nn.ReLU(inplace=True)


class PooledShortcut(nn.Sequential):
    """The vd downsampling shortcut: ``AvgPool2d(2, 2)`` then a stride-1 ``1x1`` conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(2, 2, ceil_mode=True)
        self.conv = ConvNorm(in_channels, out_channels, 1)


def projection(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """The shortcut of a stage's first block: pooled when it downsamples, else a ``1x1`` conv
    (also in the first stage, whose input already has the block's width for depth 18/34)."""
    if stride == 1:
        return ConvNorm(in_channels, out_channels, 1)
    return PooledShortcut(in_channels, out_channels)


class BasicBlock(nn.Module):
    """Two ``3x3`` convs (the first strided) plus the shortcut, then ReLU.
    ``(B, in_channels, H, W) -> (B, width, H / stride, W / stride)``."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int, project: bool) -> None:
        super().__init__()
        self.branch2a = ConvNorm(in_channels, width, 3, stride, relu=True)
        self.branch2b = ConvNorm(width, width, 3)
        self.short = projection(in_channels, width, stride) if project else None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.branch2b(self.branch2a(x))
        activated: Tensor = self.act(out + (x if self.short is None else self.short(x)))
        return activated


class BottleNeck(nn.Module):
    """``1x1`` -> ``3x3`` (strided, as in variants b-d) -> ``1x1`` expanding by 4, plus the
    shortcut, then ReLU. ``(B, in_channels, H, W) -> (B, 4 * width, H / stride, W / stride)``."""

    expansion = BOTTLENECK_EXPANSION

    def __init__(self, in_channels: int, width: int, stride: int, project: bool) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.branch2a = ConvNorm(in_channels, width, 1, relu=True)
        self.branch2b = ConvNorm(width, width, 3, stride, relu=True)
        self.branch2c = ConvNorm(width, out_channels, 1)
        self.short = projection(in_channels, out_channels, stride) if project else None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.branch2c(self.branch2b(self.branch2a(x)))
        activated: Tensor = self.act(out + (x if self.short is None else self.short(x)))
        return activated


class Stage(nn.Module):
    """``count`` blocks; the first projects (and downsamples unless ``stride`` is 1).
    ``(B, in_channels, H, W) -> (B, width * block.expansion, H / stride, W / stride)``."""

    def __init__(self, block: type[BasicBlock] | type[BottleNeck], in_channels: int, width: int,
                 count: int, stride: int) -> None:
        super().__init__()
        out_channels = width * block.expansion
        self.blocks = nn.ModuleList(
            block(in_channels if i == 0 else out_channels, width, stride if i == 0 else 1,
                  project=i == 0)
            for i in range(count))

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def freeze_batch_norms(module: nn.Module) -> nn.Module:
    """``module`` with every ``BatchNorm2d`` replaced by a ``FrozenBatchNorm2d`` holding its
    statistics and affine parameters as buffers (eps 1e-5, as the reference)."""
    if isinstance(module, nn.BatchNorm2d):
        frozen: nn.Module = FrozenBatchNorm2d(module.num_features, eps=module.eps)
        frozen.load_state_dict(module.state_dict())  # it drops num_batches_tracked
        return frozen
    for name, child in module.named_children():
        replaced = freeze_batch_norms(child)
        if replaced is not child:
            setattr(module, name, replaced)
    return module


class ResNetVd(nn.Module):
    """ResNet-vd 18/34/50/101 returning the outputs of the stages in ``out_indices``.

    The stem is three ``3x3`` convs (``3 -> c/2`` stride 2, ``c/2 -> c/2``, ``c/2 -> c``) and a
    ``3x3`` stride-2 max-pool; a downsampling shortcut average-pools before its ``1x1`` conv.
    Input ``(B, 3, H, W)``; stage ``i`` (0-based) has stride ``2 ** (i + 2)`` and
    ``base_channels * 2 ** i * expansion`` channels (expansion 1 for depth 18/34, 4 for 50/101).

    :param depth: 18, 34, 50 or 101.
    :param out_indices: stages whose outputs are returned, increasing (RT-DETR: 1, 2, 3).
    :param frozen_stages: -1 freezes nothing; 0 the stem; ``k`` the stem and stages
        ``0..k-1`` (``requires_grad = False``, kept in eval mode).
    :param frozen_bn: replace every BatchNorm by a frozen one (fixed statistics and affine
        parameters, as buffers): RT-DETR's R50/R101 recipe.
    :param base_channels: width of the stem and first stage (64); smaller for CPU demos.
    """

    def __init__(self, depth: int = 50, out_indices: tuple[int, ...] = (1, 2, 3),
                 frozen_stages: int = -1, frozen_bn: bool = False,
                 base_channels: int = 64) -> None:
        super().__init__()
        if depth not in ARCH_SETTINGS:
            raise ConfigError(f"depth: expected one of {sorted(ARCH_SETTINGS)}, got {depth}")
        if not out_indices or list(out_indices) != sorted(set(out_indices)) or any(
                i not in range(NUM_STAGES) for i in out_indices):
            raise ConfigError(f"out_indices: expected increasing indices in 0..{NUM_STAGES - 1},"
                              f" got {list(out_indices)}")
        if not -1 <= frozen_stages <= NUM_STAGES:
            raise ConfigError(f"frozen_stages: expected -1..{NUM_STAGES}, got {frozen_stages}")
        if base_channels < 2 or base_channels % 2:
            raise ConfigError(f"base_channels: expected an even int >= 2, got {base_channels}")
        bottleneck, counts = ARCH_SETTINGS[depth]
        block: type[BasicBlock] | type[BottleNeck] = BottleNeck if bottleneck else BasicBlock
        half = base_channels // 2
        self.conv1 = nn.Sequential()
        self.conv1.add_module("conv1_1", ConvNorm(3, half, 3, 2, relu=True))
        self.conv1.add_module("conv1_2", ConvNorm(half, half, 3, 1, relu=True))
        self.conv1.add_module("conv1_3", ConvNorm(half, base_channels, 3, 1, relu=True))
        self.pool = nn.MaxPool2d(3, 2, padding=1)
        self.res_layers = nn.ModuleList()
        in_channels = base_channels
        widths = [base_channels * 2 ** i for i in range(NUM_STAGES)]
        for stage, (width, count) in enumerate(zip(widths, counts, strict=True)):
            self.res_layers.append(Stage(block, in_channels, width, count, 1 if stage == 0 else 2))
            in_channels = width * block.expansion
        self.out_indices = tuple(out_indices)
        self.out_channels = [widths[i] * block.expansion for i in self.out_indices]
        self.frozen_stages = frozen_stages
        if frozen_bn:
            freeze_batch_norms(self)
        for module in self.frozen_modules():
            for param in module.parameters():
                param.requires_grad_(False)

    def frozen_modules(self) -> list[nn.Module]:
        """The stem and the first ``frozen_stages`` stages (none when it is -1)."""
        if self.frozen_stages < 0:
            return []
        return [self.conv1, *self.res_layers[: self.frozen_stages]]

    def train(self, mode: bool = True) -> ResNetVd:
        """Training mode, with the frozen parts kept in eval mode."""
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """:param x: images ``(B, 3, H, W)``. :returns: one map per ``out_indices``."""
        x = self.pool(self.conv1(x))
        outs = []
        for index, stage in enumerate(self.res_layers):
            x = stage(x)
            if index in self.out_indices:
                outs.append(x)
            if index == self.out_indices[-1]:
                break
        return tuple(outs)
