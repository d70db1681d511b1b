"""Puts a detector behind ``forward`` (for DDP), converts BatchNorm and freezes parameters."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from core.errors import ConfigError
from core.structures import DetBatch


class TrainStep(nn.Module):
    """``forward(batch) = detector.loss(batch)``, so DDP can hook gradient all-reduce.

    DDP synchronises gradients only for computations that go through its ``forward``; the
    detector contract exposes ``loss`` instead, which this wrapper forwards to.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, batch: DetBatch) -> dict[str, torch.Tensor]:
        """The detector's loss dict for ``batch``."""
        return self.detector.loss(batch)


def freeze_prefixes(model: nn.Module, prefixes: list[str]) -> list[str]:
    """Stop gradients for every parameter whose name starts with one of ``prefixes``.

    :returns: names of the frozen parameters.
    :raises ConfigError: when a prefix matches no parameter (a typo would silently train).
    """
    frozen = []
    for prefix in prefixes:
        if not isinstance(prefix, str) or not prefix:
            raise ConfigError(f"freeze: expected non-empty module prefixes, got {prefix!r}")
        matched = [(name, p) for name, p in model.named_parameters()
                   if name == prefix or name.startswith(prefix.rstrip(".") + ".")]
        if not matched:
            raise ConfigError(f"freeze: prefix {prefix!r} matches no parameter of "
                              f"{type(model).__name__}")
        for name, param in matched:
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def wrap_for_training(detector: nn.Module, device: torch.device, distributed: bool,
                      sync_bn: bool, find_unused_parameters: bool) -> nn.Module:
    """A module whose ``forward(batch)`` returns the loss dict (DDP-wrapped when distributed).

    ``sync_bn`` converts BatchNorm layers to SyncBatchNorm (CUDA + nccl only); use
    :func:`unwrap_detector` to reach the (possibly converted) detector.
    """
    if sync_bn and distributed:
        if device.type != "cuda":
            raise ConfigError("sync_bn: SyncBatchNorm needs CUDA (nccl); set sync_bn = false")
        detector = nn.SyncBatchNorm.convert_sync_batchnorm(detector)
    step = TrainStep(detector)
    if not distributed:
        return step
    kwargs: dict[str, Any] = {"find_unused_parameters": find_unused_parameters}
    if device.type == "cuda":
        kwargs["device_ids"] = [device.index]
    return DistributedDataParallel(step, **kwargs)


def unwrap_detector(train_step: nn.Module) -> nn.Module:
    """The detector inside what :func:`wrap_for_training` returned."""
    if isinstance(train_step, DistributedDataParallel):
        train_step = train_step.module
    return train_step.detector
