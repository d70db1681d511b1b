"""Stops training when a validation metric stops improving."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from core.engine.hooks.base import PRIORITIES, Hook
from core.errors import ConfigError, require_at_least

if TYPE_CHECKING:
    from core.engine.runner import Runner


class EarlyStoppingHook(Hook):
    """Sets ``runner.stop_training`` after ``patience`` validations without improvement.

    :param monitor: metric key, e.g. ``"coco/bbox_mAP"``.
    :param rule: ``"greater"`` (higher is better) or ``"less"``.
    :param patience: validations without improvement before stopping.
    :param min_delta: smallest change that counts as an improvement.
    """

    priority = PRIORITIES["LOW"]

    def __init__(self, monitor: str = "", rule: Literal["greater", "less"] = "greater",
                 patience: int = 5, min_delta: float = 0.0) -> None:
        if not monitor:
            raise ConfigError("EarlyStoppingHook.monitor: give the metric key to watch")
        require_at_least("EarlyStoppingHook.patience", patience, 1)
        self.monitor = monitor
        self.rule = rule
        self.patience = patience
        self.min_delta = min_delta
        self.best = -math.inf if rule == "greater" else math.inf
        self.bad_validations = 0

    def _improved(self, value: float) -> bool:
        if self.rule == "greater":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def after_val(self, runner: Runner, metrics: dict[str, float]) -> None:
        """Count validations without improvement; stop the run after ``patience``."""
        if self.monitor not in metrics:
            raise ConfigError(f"EarlyStoppingHook.monitor: metric {self.monitor!r} is not among "
                              f"the validation metrics {sorted(metrics)}")
        value = metrics[self.monitor]
        if self._improved(value):
            self.best = value
            self.bad_validations = 0
            return
        self.bad_validations += 1
        if self.bad_validations >= self.patience:
            runner.logger.info(
                f"early stopping: {self.monitor} has not improved on {self.best:.4f} for "
                f"{self.patience} validations")
            runner.stop_training = True

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict[str, Any]) -> None:
        """Save the best value and the count of bad validations."""
        checkpoint.setdefault("hooks", {})["early_stopping"] = {
            "best": self.best, "bad_validations": self.bad_validations}

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict[str, Any]) -> None:
        """Restore what :meth:`before_save_checkpoint` saved."""
        state = checkpoint.get("hooks", {}).get("early_stopping")
        if state is not None:
            self.best = state["best"]
            self.bad_validations = state["bad_validations"]
