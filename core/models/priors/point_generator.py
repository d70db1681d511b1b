"""Dense points, one per feature-map cell, for anchor-free heads."""

from __future__ import annotations

import torch
from torch import Tensor

from core.errors import ConfigError


class PointGenerator:
    """The centre of every cell of every level: cell ``(y, x)`` of level ``l`` is the point
    ``((x + offset) * strides[l], (y + offset) * strides[l])``.

    :param strides: stride of each level in pixels.
    :param offset: cell-centre offset in units of the stride (0.5: the cell's centre, as
        YOLOv8 and RTMDet use; 0: its top-left corner, as YOLOX uses).
    """

    def __init__(self, strides: tuple[int, ...] = (8, 16, 32), offset: float = 0.5) -> None:
        if not strides or any(s <= 0 for s in strides):
            raise ConfigError(f"strides: expected positive values, got {list(strides)}")
        self.strides = [int(s) for s in strides]
        self.offset = offset

    @property
    def num_base_priors(self) -> list[int]:
        """One point per cell on every level."""
        return [1] * len(self.strides)

    def grid_priors(
        self, featmap_sizes: list[tuple[int, int]], device: torch.device | str = "cpu"
    ) -> list[Tensor]:
        """Points of every level: list of ``(H_l * W_l, 2)`` ``(x, y)`` pixel tensors, row-major.

        :raises ValueError: when the number of maps differs from the number of strides.
        """
        if len(featmap_sizes) != len(self.strides):
            raise ValueError(
                f"PointGenerator has {len(self.strides)} strides but got {len(featmap_sizes)} maps"
            )
        levels = []
        for (height, width), stride in zip(featmap_sizes, self.strides, strict=True):
            xs = (torch.arange(int(width), device=device, dtype=torch.float32) + self.offset)
            ys = (torch.arange(int(height), device=device, dtype=torch.float32) + self.offset)
            yy, xx = torch.meshgrid(ys * stride, xs * stride, indexing="ij")
            levels.append(torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1))
        return levels
