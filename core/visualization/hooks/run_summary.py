"""RunSummaryHook: the closing lines of a training log (best metric, checkpoint, pictures)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from core.engine.hooks.base import PRIORITIES, Hook
from core.engine.hooks.checkpoint import CheckpointHook

if TYPE_CHECKING:
    from core.engine.runner import Runner

AUTO_METRIC = "auto"


class RunSummaryHook(Hook):
    """After training, log the best validation metric with its epoch (iteration in
    iteration-based runs), the best checkpoint's path and the pictures other hooks wrote
    (hooks with a ``pictures(runner) -> list[Path]`` method).

    The validations travel in every checkpoint, so the lines of a resumed run cover the
    validations before the resume too; when the checkpoint hook keeps the best checkpoint by
    the same metric, its best is the one reported (the one its best checkpoint file holds).

    :param metric: the metric judged; ``"auto"`` takes the checkpoint hook's ``save_best``
        metric, or else the first validation metric.
    """

    priority = PRIORITIES["LOWEST"]  # after every hook has written its files

    def __init__(self, metric: str = AUTO_METRIC) -> None:
        self.metric = metric
        self._history: list[tuple[int, dict[str, float]]] = []

    def after_val(self, runner: Runner, metrics: dict[str, float]) -> None:
        self._history.append((runner.epoch if runner.by_epoch else runner.iter, dict(metrics)))

    def after_train(self, runner: Runner) -> None:
        if runner.rank != 0:
            return
        checkpoint = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        lines = [f"run finished: {runner.work_dir}"]
        best = self._best(checkpoint, runner.by_epoch)
        unit = "epoch" if runner.by_epoch else "iteration"
        if best is not None:
            key, value, step = best
            lines.append(f"best {key} = {value:.4f} at {unit} {step}")
        if checkpoint is not None and checkpoint.best_file:
            lines.append(f"best checkpoint: {runner.work_dir / checkpoint.best_file}")
        pictures = [path for hook in runner.hooks if hasattr(hook, "pictures")
                    for path in hook.pictures(runner)]
        if pictures:
            lines.append("pictures: " + ", ".join(str(p) for p in pictures))
        for line in lines:
            runner.logger.info(line)

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict[str, Any]) -> None:
        """Save the validations so far (a resumed run reports the best over all of them)."""
        checkpoint.setdefault("hooks", {})["run_summary"] = {
            "history": [[step, dict(metrics)] for step, metrics in self._history]}

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict[str, Any]) -> None:
        """Restore the validations of a resumed run."""
        state = checkpoint.get("hooks", {}).get("run_summary")
        if state is not None:
            self._history = [(int(step), dict(metrics)) for step, metrics in state["history"]]

    def _best(self, checkpoint: CheckpointHook | None, by_epoch: bool,
              ) -> tuple[str, float, int] | None:
        """``(metric, best value, epoch or iteration)`` over the validations, or ``None``."""
        if not self._history:
            return None
        key = self.metric
        if key == AUTO_METRIC and checkpoint is not None and checkpoint.save_best not in (
                "", AUTO_METRIC):
            key = checkpoint.save_best
        if key == AUTO_METRIC:
            key = next(iter(self._history[0][1]), "")
        if checkpoint is not None and checkpoint.best_score is not None and (
                checkpoint.best_key == key):
            step = checkpoint.best_epoch if by_epoch else checkpoint.best_iter
            return key, checkpoint.best_score, step
        rule = (checkpoint.rule if checkpoint is not None else None) or (
            "less" if "loss" in key else "greater")
        scored = [(metrics[key], step) for step, metrics in self._history
                  if key in metrics and not math.isnan(metrics[key])]
        if not scored:
            return None
        sign = 1.0 if rule == "greater" else -1.0
        value, step = max(scored, key=lambda item: (sign * item[0], -item[1]))
        return key, value, step
