"""Runs validation every ``interval`` epochs (or iterations in an iteration-based run)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.engine.hooks.base import PRIORITIES, Hook
from core.errors import ConfigError

if TYPE_CHECKING:
    from core.engine.runner import Runner
    from core.structures import DetBatch


class EvaluationHook(Hook):
    """Calls ``runner.val()`` on schedule and after the last epoch/iteration.

    :param interval: epochs (or iterations when ``train.by_epoch = false``) between
        validations; ``None`` takes ``train.val_interval``; 0 disables validation.
    :param begin: no validation before this many epochs/iterations.
    """

    # after the logger (the iteration's line first), before the checkpoint (best-of needs it)
    priority = PRIORITIES["LOW"]

    def __init__(self, interval: int | None = None, begin: int = 0) -> None:
        if interval is not None and interval < 0:
            raise ConfigError(f"interval: expected >= 0, got {interval}")
        self.interval = interval
        self.begin = begin

    def _due(self, runner: Runner, done: int, total: int) -> bool:
        interval = runner.val_interval if self.interval is None else self.interval
        if interval == 0 or runner.val_loader is None or done < self.begin:
            return False
        return done % interval == 0 or done == total

    def after_train_iter(self, runner: Runner, batch_idx: int, batch: DetBatch,
                         outputs: dict[str, float]) -> None:
        """Validate in iteration-based runs."""
        if not runner.by_epoch and self._due(runner, runner.iter, runner.max_iters):
            runner.val()

    def after_train_epoch(self, runner: Runner) -> None:
        """Validate in epoch-based runs."""
        if runner.by_epoch and self._due(runner, runner.epoch, runner.max_epochs):
            runner.val()
