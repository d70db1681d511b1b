"""The example's components: one small backbone, one neck, one loss and one transform."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from core.api import DetSample, WeightedLoss


class ExampleConvNet(nn.Module):
    """A stack of stride-2 conv blocks: ``(B, 3, H, W) -> tuple of (B, C_i, H/2^i, W/2^i)``.

    :param widths: output channels of each block; every block halves the resolution.
    :param out_indices: blocks whose outputs are returned.
    """

    def __init__(
        self, widths: tuple[int, ...] = (16, 32, 64), out_indices: tuple[int, ...] = (1, 2)
    ):
        super().__init__()
        if any(i not in range(len(widths)) for i in out_indices):
            raise ValueError(f"out_indices {out_indices} must index widths {widths}")
        channels = [3, *widths]
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            )
            for c_in, c_out in itertools.pairwise(channels)
        )
        self.out_indices = out_indices
        self.out_channels = tuple(widths[i] for i in out_indices)

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        outputs = []
        x = images
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.out_indices:
                outputs.append(x)
        return tuple(outputs)


class ExampleChannelMapper(nn.Module):
    """A 1x1 conv per level mapping ``in_channels[i]`` to ``out_channels``.

    :param in_channels: channels of each input level.
    :param out_channels: channels of every output level.
    """

    def __init__(self, in_channels: tuple[int, ...] = (32, 64), out_channels: int = 32):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, out_channels, kernel_size=1) for c in in_channels)

    def forward(self, features: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        if len(features) != len(self.convs):
            raise ValueError(f"expected {len(self.convs)} feature levels, got {len(features)}")
        return tuple(conv(f) for conv, f in zip(self.convs, features, strict=True))


class ExampleL1Loss(WeightedLoss):
    """Absolute error times ``loss_weight`` (contract :class:`core.contracts.Loss`):
    ``(N, D), (N, D) -> scalar``, the sum divided by ``avg_factor`` when a head gives one
    (the number of positives), else the mean. ``WeightedLoss.forward`` applies ``weight``
    (``(N,)``, ``(N, 1)`` or ``(N, D)``), the reduction and ``loss_weight``; the loss writes
    only its element-wise error.

    :param loss_weight: factor of the loss.
    """

    zero_for_empty = True  # no positives: a zero loss instead of the mean of nothing

    def __init__(self, loss_weight: float = 1.0):
        super().__init__(loss_weight)

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        return (pred - target).abs()


class ExampleInvert:
    """Inverts a uint8 ``(C, H, W)`` image with probability ``prob``; boxes do not move."""

    def __init__(self, prob: float = 1.0, seed: int | None = None):
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        self.prob = prob
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def __call__(self, sample: DetSample) -> DetSample:
        if sample.image is None:
            raise ValueError(f"sample {sample.img_id}: ExampleInvert needs a loaded image")
        if torch.rand((), generator=self.generator) < self.prob:
            sample.image = 255 - sample.image
        return sample
