"""Saves checkpoints on schedule, keeps the last K and the best one by a metric."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from core.engine.hooks.base import PRIORITIES, Hook
from core.errors import ConfigError, require_at_least

if TYPE_CHECKING:
    from core.engine.runner import Runner
    from core.structures import DetBatch


class CheckpointHook(Hook):
    """Writes ``epoch_N.pth`` / ``iter_N.pth`` and ``best_<metric>_*.pth`` into the work dir.

    :param interval: epochs (iterations when ``train.by_epoch = false``) between checkpoints;
        the last epoch/iteration is always saved.
    :param iter_interval: in epoch-based runs, also save every N iterations (``iter_N.pth``)
        so that a killed run resumes mid-epoch; 0 disables.
    :param max_keep: how many regular checkpoints to keep (oldest deleted first); 0 keeps all.
    :param save_best: metric key whose best value selects ``best_*.pth``; ``"auto"`` takes
        the first metric; ``""`` disables.
    :param rule: ``"greater"`` or ``"less"`` is better; default: ``less`` for keys containing
        "loss", else ``greater``.
    """

    priority = PRIORITIES["VERY_LOW"]

    def __init__(self, interval: int = 1, iter_interval: int = 0, max_keep: int = 3,
                 save_best: str = "", rule: Literal["greater", "less"] | None = None) -> None:
        for name, value in (("interval", interval), ("iter_interval", iter_interval),
                            ("max_keep", max_keep)):
            require_at_least(name, value, 0)
        self.interval = interval
        self.iter_interval = iter_interval
        self.max_keep = max_keep
        self.save_best = save_best
        self.rule = rule
        self.kept: list[str] = []
        self.best_score: float | None = None
        #: the metric ``best_score`` is of (``save_best`` with ``"auto"`` resolved)
        self.best_key = ""
        self.best_file = ""
        self.best_epoch = self.best_iter = 0
        self._pending_metrics: dict[str, float] | None = None

    def after_train_iter(self, runner: Runner, batch_idx: int, batch: DetBatch,
                         outputs: dict[str, float]) -> None:
        """Iteration checkpoints (iteration-based runs, or ``iter_interval`` mid-epoch)."""
        if runner.by_epoch:
            mid_epoch = runner.iter_in_epoch < runner.iters_per_epoch
            if self.iter_interval and mid_epoch and runner.iter % self.iter_interval == 0:
                self._save(runner, f"iter_{runner.iter}.pth")
            return
        improved = self._update_best(runner, f"iter_{runner.iter}")
        if (self.interval and runner.iter % self.interval == 0) or runner.iter == runner.max_iters:
            self._save(runner, f"iter_{runner.iter}.pth")
        self._write_best(runner, improved)

    def after_train_epoch(self, runner: Runner) -> None:
        """The best score first (so that the epoch checkpoint holds it), then the epoch
        checkpoint, then the best checkpoint if the latest validation improved."""
        improved = self._update_best(runner, f"epoch_{runner.epoch}")
        due = self.interval and runner.epoch % self.interval == 0
        if due or runner.epoch == runner.max_epochs:
            self._save(runner, f"epoch_{runner.epoch}.pth")
        self._write_best(runner, improved)

    def after_val(self, runner: Runner, metrics: dict[str, float]) -> None:
        """Remember the metrics; the best checkpoint is written once the step is complete."""
        self._pending_metrics = metrics

    def _save(self, runner: Runner, filename: str) -> None:
        if filename not in self.kept:
            self.kept.append(filename)
        runner.save_checkpoint(filename)
        while self.max_keep and len(self.kept) > self.max_keep:
            stale = self.kept.pop(0)
            if runner.rank == 0:
                (Path(runner.work_dir) / stale).unlink(missing_ok=True)

    def _metric_key(self, metrics: dict[str, float]) -> str:
        if self.save_best == "auto":
            return next(iter(metrics))
        if self.save_best not in metrics:
            raise ConfigError(f"default_hooks.checkpoint.save_best: metric {self.save_best!r} "
                              f"is not among the validation metrics {sorted(metrics)}")
        return self.save_best

    def _update_best(self, runner: Runner, tag: str) -> tuple[str, str] | None:
        """Take the pending validation as the new best if it improved; returns
        ``(metric key, previous best file)`` then, else ``None``."""
        metrics, self._pending_metrics = self._pending_metrics, None
        if not self.save_best or not metrics:
            return None
        key = self._metric_key(metrics)
        value = metrics[key]
        rule = self.rule or ("less" if "loss" in key else "greater")
        if math.isnan(value):
            return None
        if self.best_score is not None and not (
            value > self.best_score if rule == "greater" else value < self.best_score
        ):
            return None
        previous = self.best_file
        self.best_score, self.best_key = value, key
        self.best_epoch, self.best_iter = runner.epoch, runner.iter
        self.best_file = f"best_{re.sub(r'[^A-Za-z0-9]+', '_', key)}_{tag}.pth"
        return key, previous

    def _write_best(self, runner: Runner, improved: tuple[str, str] | None) -> None:
        if improved is None:
            return
        key, previous = improved
        runner.save_checkpoint(self.best_file, update_last=False)
        runner.logger.info(f"new best {key} = {self.best_score:.4f}: saved {self.best_file}")
        if previous and previous != self.best_file and runner.rank == 0:
            (Path(runner.work_dir) / previous).unlink(missing_ok=True)

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict[str, Any]) -> None:
        """Save which files are kept and the best score so far (with its epoch and file)."""
        checkpoint.setdefault("hooks", {})["checkpoint"] = {
            "kept": self.kept[-self.max_keep:] if self.max_keep else list(self.kept),
            "best_score": self.best_score, "best_key": self.best_key, "best_file": self.best_file,
            "best_epoch": self.best_epoch, "best_iter": self.best_iter}

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict[str, Any]) -> None:
        """Restore the kept list and best score of a resumed run."""
        state = checkpoint.get("hooks", {}).get("checkpoint")
        if state is not None:
            self.kept = list(state["kept"])
            self.best_score = state["best_score"]
            self.best_key = state.get("best_key", "")
            self.best_file = state["best_file"]
            self.best_epoch = state.get("best_epoch", 0)
            self.best_iter = state.get("best_iter", 0)
