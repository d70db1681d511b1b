"""Checks of file keys that plugdet does not load (fixed or repeated values): each names the
keys with their shapes and raises :class:`CheckpointError` when their values differ from what
the model computes with."""

from __future__ import annotations

from typing import Protocol, cast

import attrs
import torch
from torch import nn

from core.api import AnchorGenerator, CheckpointError, DenseHead, PeerCheckpoint
from plugdet_yolo.rtmdet_head import RTMDetHead
from plugdet_yolo.yolov8_head import YOLOv8Head
from plugdet_yolo.zoo.tables import MM_HEAD


def dense_head(model: nn.Module) -> DenseHead:
    """``model.head``, a dense head (the converter has checked its type)."""
    return cast(DenseHead, model.head)


def num_levels(model: nn.Module) -> int:
    """The pyramid levels of ``model``'s head."""
    return len(dense_head(model).prior_generator.strides)


class FileCheck(Protocol):
    """File keys that are checked, not loaded."""

    def keys(self, model: nn.Module) -> dict[str, tuple[int, ...]]:
        """The checked file keys with their shapes for ``model``."""

    def check(self, checkpoint: PeerCheckpoint, model: nn.Module) -> None:
        """Raise :class:`CheckpointError` when a value of :meth:`keys` does not fit ``model``."""


@attrs.frozen
class DFLBins:
    """The ``dfl`` bins of ultralytics' anchor-free detect row ``row``: fixed
    ``0 .. reg_max - 1`` (not a parameter in plugdet), a ``(1, reg_max, 1, 1)`` conv weight."""

    row: str

    @property
    def key(self) -> str:
        """The file key of the bins."""
        return f"{self.row}.dfl.conv.weight"

    def keys(self, model: nn.Module) -> dict[str, tuple[int, ...]]:
        return {self.key: (1, cast(YOLOv8Head, model.head).reg_max, 1, 1)}

    def check(self, checkpoint: PeerCheckpoint, model: nn.Module) -> None:
        bins = checkpoint.state[self.key].flatten()
        if not torch.equal(bins, torch.arange(len(bins), dtype=bins.dtype)):
            raise CheckpointError(f"checkpoint {checkpoint.path}: the DFL bins "
                                  f"{self.key} are {bins.tolist()}, plugdet's "
                                  f"YOLOv8Head integrates over 0 .. {len(bins) - 1}")


@attrs.frozen
class YOLOv5Anchors:
    """The ``(L, A, 2)`` ``anchors`` buffer ``key`` of a YOLOv5 release file (per level, in
    units of its stride): it must be the config's prior sizes (files trained with AutoAnchor
    may have others)."""

    key: str

    def keys(self, model: nn.Module) -> dict[str, tuple[int, ...]]:
        priors = dense_head(model).prior_generator.num_base_priors
        return {self.key: (num_levels(model), priors[0], 2)}

    def check(self, checkpoint: PeerCheckpoint, model: nn.Module) -> None:
        generator = cast(AnchorGenerator, dense_head(model).prior_generator)
        strides = torch.tensor(generator.strides, dtype=torch.float32)
        # the file's anchors are in units of their level's stride; (L, A, 2) pixels (w, h)
        file_sizes = checkpoint.state[self.key].float() * strides[:, None, None]
        config_sizes = torch.stack([a[:, 2:] - a[:, :2] for a in generator.base_anchors])
        if not torch.allclose(file_sizes, config_sizes.to(file_sizes), atol=1e-2):
            raise CheckpointError(
                f"checkpoint {checkpoint.path}: its anchors (pixels, per level (w, h)) "
                f"{file_sizes.round(decimals=2).tolist()} differ from the config's; set "
                "model.head.prior_generator.base_sizes to them")


@attrs.frozen
class SharedConvCopies:
    """MMYOLO's RTMDet with shared head convs (``share_conv``): the file still holds the
    level-0 conv under every level; those copies must be the same values."""

    @staticmethod
    def copies(model: nn.Module) -> dict[str, tuple[str, tuple[int, ...]]]:
        """``{file key of a level's copy: (the level-0 key, shape)}`` of the shared convs."""
        head = cast(RTMDetHead, model.head)
        if not head.share_conv:
            return {}
        copies = {}
        for branch in ("cls", "reg"):
            for i, conv in enumerate(getattr(head, f"{branch}_convs")[0]):
                first = f"{MM_HEAD}.{branch}_convs.0.{i}.conv.weight"
                for level in range(1, num_levels(model)):
                    copies[f"{MM_HEAD}.{branch}_convs.{level}.{i}.conv.weight"] = (
                        first, tuple(conv.weight.shape))
        return copies

    def keys(self, model: nn.Module) -> dict[str, tuple[int, ...]]:
        return {copy: shape for copy, (_, shape) in self.copies(model).items()}

    def check(self, checkpoint: PeerCheckpoint, model: nn.Module) -> None:
        for copy, (first, _) in self.copies(model).items():
            if not torch.equal(checkpoint.state[copy], checkpoint.state[first]):
                raise CheckpointError(
                    f"checkpoint {checkpoint.path}: {copy} differs from {first}: the file's "
                    "head does not share its convs across levels; build the model with "
                    "model.head.share_conv = false")
