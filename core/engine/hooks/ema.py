"""Exponential moving average of the model weights, used for validation and testing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from core.engine.hooks.base import PRIORITIES, Hook
from core.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from core.engine.runner import Runner
    from core.structures import DetBatch


class EMAHook(Hook):
    """Keeps ``ema = (1 - momentum) * ema + momentum * weights`` after every iteration.

    Validation and testing run with the averaged weights (swapped in and out); checkpoints
    store them under ``ema_state_dict``.

    :param momentum: weight of the current model in each update.
    :param update_buffers: average buffers too (otherwise they are copied).
    :param begin_iter: iterations before averaging starts (the average copies until then).
    """

    priority = PRIORITIES["ABOVE_NORMAL"]

    def __init__(self, momentum: float = 0.0002, update_buffers: bool = False,
                 begin_iter: int = 0) -> None:
        if not 0.0 < momentum < 1.0:
            raise ConfigError(f"EMAHook.momentum: expected 0 < momentum < 1, got {momentum}")
        self.momentum = momentum
        self.update_buffers = update_buffers
        self.begin_iter = begin_iter
        self.ema_state: dict[str, torch.Tensor] = {}

    def _copy_from_model(self, runner: Runner) -> None:
        self.ema_state = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}

    def before_run(self, runner: Runner) -> None:
        """Start the average at the current weights."""
        self._copy_from_model(runner)

    @torch.no_grad()
    def after_train_iter(self, runner: Runner, batch_idx: int, batch: DetBatch,
                         outputs: dict[str, float]) -> None:
        """Fold the updated weights into the average."""
        params = {name for name, _ in runner.model.named_parameters()}
        for key, value in runner.model.state_dict().items():
            averaged = key in params or self.update_buffers
            if runner.iter <= self.begin_iter or not averaged or not value.is_floating_point():
                self.ema_state[key].copy_(value)
            else:
                self.ema_state[key].lerp_(value.detach(), self.momentum)

    def _swap(self, runner: Runner) -> None:
        model_state = runner.model.state_dict()
        for key, value in model_state.items():
            tmp = value.detach().clone()
            value.copy_(self.ema_state[key])
            self.ema_state[key].copy_(tmp)

    def before_val(self, runner: Runner) -> None:
        """Validate with the averaged weights."""
        self._swap(runner)

    def after_val(self, runner: Runner, metrics: dict[str, float]) -> None:
        """Put the training weights back."""
        self._swap(runner)

    def before_test(self, runner: Runner) -> None:
        """Test with the averaged weights."""
        self._swap(runner)

    def after_test(self, runner: Runner, metrics: dict[str, float]) -> None:
        """Put the loaded weights back."""
        self._swap(runner)

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict[str, Any]) -> None:
        """Store the average next to the training weights."""
        checkpoint["ema_state_dict"] = {k: v.clone() for k, v in self.ema_state.items()}

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict[str, Any]) -> None:
        """Restore the average (or start it at the loaded weights if the file has none)."""
        saved = checkpoint.get("ema_state_dict")
        if saved is None:
            self._copy_from_model(runner)
            return
        missing = sorted(set(self.ema_state) ^ set(saved))
        if missing:
            raise CheckpointError("EMAHook: the checkpoint's ema_state_dict does not fit the "
                                  f"model; differing keys: {missing[:20]}")
        for key, value in saved.items():
            self.ema_state[key].copy_(value)
