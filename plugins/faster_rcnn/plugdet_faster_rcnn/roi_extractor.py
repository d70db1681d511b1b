"""RoI feature extraction: the stage ``roi_extractor`` this plugin declares, and multi-level
RoIAlign choosing each box's pyramid level by its size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor
from torchvision.ops import roi_align

from core.api import ConfigError

#: Added to the level's log2 before flooring, so that a box exactly on a boundary (e.g.
#: 112 px with ``finest_scale`` 56) takes the coarser level whatever the rounding.
LEVEL_EPS = 1e-6


@runtime_checkable
class RoIExtractor(Protocol):
    """Stage ``roi_extractor``: fixed-size features of boxes from a feature pyramid.

    ``extract(feats, rois)`` takes the pyramid levels ``(B, C, H_l, W_l)`` (finest first) and
    ``(K, 5)`` rois ``(image index, x1, y1, x2, y2)`` in input pixels and returns
    ``(K, C, out_size, out_size)`` features; ``out_size`` and ``featmap_strides`` say which.
    """

    out_size: int
    featmap_strides: Sequence[int]

    def extract(self, feats: Sequence[Tensor], rois: Tensor) -> Tensor: ...


class MultiLevelRoIAlign:
    """RoIAlign (``torchvision.ops.roi_align``) on one level per box: level
    ``floor(log2(sqrt(w * h) / finest_scale))`` clamped to the levels given, so boxes of
    ``finest_scale * 2 ** l`` to ``finest_scale * 2 ** (l + 1)`` pixels read level ``l``
    (with 56: the canonical 224-pixel box reads stride 16, as in the FPN paper).

    :param featmap_strides: strides of the levels used (the first ``len`` pyramid levels).
    :param out_size: output height and width.
    :param sampling_ratio: sampling points per bin side (0: adaptive, ``ceil(bin size)``).
    :param aligned: shift boxes by half a pixel (pixel-centre model); False is the original
        RoIAlign (torchvision's Faster R-CNN).
    :param finest_scale: box scale mapped to the finest level.
    """

    def __init__(
        self,
        featmap_strides: tuple[int, ...] = (4, 8, 16, 32),
        out_size: int = 7,
        sampling_ratio: int = 0,
        aligned: bool = True,
        finest_scale: float = 56.0,
    ) -> None:
        if not featmap_strides or any(s <= 0 for s in featmap_strides):
            raise ConfigError(f"featmap_strides: expected positive values, got "
                              f"{list(featmap_strides)}")
        if out_size < 1:
            raise ConfigError(f"out_size: expected a positive int, got {out_size}")
        if sampling_ratio < 0:
            raise ConfigError(f"sampling_ratio: expected >= 0, got {sampling_ratio}")
        if finest_scale <= 0:
            raise ConfigError(f"finest_scale: expected a positive value, got {finest_scale}")
        self.featmap_strides = [int(s) for s in featmap_strides]
        self.out_size = out_size
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.finest_scale = finest_scale

    def levels(self, rois: Tensor) -> Tensor:
        """``(K,)`` int64 level index of ``(K, 5)`` rois."""
        sizes = (rois[:, 3:5] - rois[:, 1:3]).clamp(min=0)
        scale = torch.sqrt(sizes[:, 0] * sizes[:, 1])
        level = torch.floor(torch.log2(scale / self.finest_scale) + LEVEL_EPS)
        level = torch.nan_to_num(level, neginf=0.0)  # empty boxes read the finest level
        return level.clamp(0, len(self.featmap_strides) - 1).long()

    def extract(self, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
        """:param feats: pyramid levels ``(B, C, H_l, W_l)``, finest first (at least
            ``len(featmap_strides)`` of them).
        :param rois: ``(K, 5)`` float ``(image index, x1, y1, x2, y2)``.
        :returns: ``(K, C, out_size, out_size)``."""
        if len(feats) < len(self.featmap_strides):
            raise ValueError(f"{len(feats)} feature levels for {len(self.featmap_strides)} "
                             "strides")
        channels = feats[0].shape[1]
        out = feats[0].new_zeros((len(rois), channels, self.out_size, self.out_size))
        levels = self.levels(rois)
        for index, stride in enumerate(self.featmap_strides):
            inds = (levels == index).nonzero().flatten()
            if not len(inds):
                continue
            out[inds] = roi_align(feats[index], rois[inds].to(feats[index].dtype),
                                  self.out_size, spatial_scale=1.0 / stride,
                                  sampling_ratio=self.sampling_ratio, aligned=self.aligned)
        return out


def rois_from_boxes(boxes: Sequence[Tensor]) -> Tensor:
    """Per-image ``(K_i, 4)`` boxes -> ``(sum K_i, 5)`` rois with the image index first."""
    index = torch.cat([torch.full((len(b), 1), float(i), dtype=b.dtype, device=b.device)
                       for i, b in enumerate(boxes)])
    return torch.cat([index, torch.cat(list(boxes))], dim=1)


