"""Steps the learning-rate schedulers after each iteration and each epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.engine.hooks.base import PRIORITIES, Hook

if TYPE_CHECKING:
    from core.engine.runner import Runner
    from core.structures import DetBatch


class ParamSchedulerHook(Hook):
    """Advances ``runner.param_schedulers`` (per-iteration and per-epoch ones)."""

    priority = PRIORITIES["LOW"]

    def after_train_iter(self, runner: Runner, batch_idx: int, batch: DetBatch,
                         outputs: dict[str, float]) -> None:
        """Step the per-iteration schedulers."""
        runner.param_schedulers.step_iter(runner.iter)

    def after_train_epoch(self, runner: Runner) -> None:
        """Step the per-epoch schedulers."""
        runner.param_schedulers.step_epoch(runner.epoch)
