"""Logs training scalars (losses, lr, timing, memory, anything in the MessageHub)."""

from __future__ import annotations

import resource
import sys
import time
from typing import TYPE_CHECKING

import torch

from core.engine.hooks.base import PRIORITIES, Hook
from core.engine.log_setup import FILE_ONLY
from core.engine.progress import format_duration
from core.errors import require_at_least

if TYPE_CHECKING:
    from core.engine.runner import Runner
    from core.structures import DetBatch

TRAIN_PREFIX = "train/"
#: Printed first, in this order; every other scalar follows sorted by name.
LEADING_KEYS = ("lr", "eta", "time", "data_time", "memory", "loss")
BYTES_PER_MB = 1024 * 1024
#: ``ru_maxrss`` is in KiB on Linux and bytes on macOS.
RSS_UNIT = 1 if sys.platform == "darwin" else 1024


def memory_mb(device: torch.device) -> int:
    """Peak memory in MB: CUDA allocator peak on GPU, process peak RSS on CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device) / BYTES_PER_MB)
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * RSS_UNIT / BYTES_PER_MB)


def _format_value(key: str, value: float) -> str:
    if key == "lr":
        return f"{value:.4e}"
    if key == "memory":
        return f"{int(value)}"
    return f"{value:.4f}"


class LoggerHook(Hook):
    """Every ``interval`` iterations (of the epoch in epoch-based runs, and at its end), logs
    the mean of every ``train/*`` scalar over the updates since the previous line.

    The line goes to the text log and (on a terminal) the progress bar shows ETA, losses, lr,
    it/s and memory after every iteration; the same scalars go to every vis backend.

    :param interval: iterations between log lines (the averaging window).
    """

    priority = PRIORITIES["BELOW_NORMAL"]

    def __init__(self, interval: int = 50) -> None:
        require_at_least("interval", interval, 1)
        self.interval = interval
        self._logged_updates: dict[str, int] = {}
        self._last_time = 0.0

    def before_train(self, runner: Runner) -> None:
        """Start the clocks; scalars already in a resumed hub count as logged."""
        self._last_time = time.perf_counter()
        hub = runner.message_hub
        self._logged_updates = {key: hub.get_scalar(key).num_updates for key in hub.scalar_keys}

    def before_train_iter(self, runner: Runner, batch_idx: int, batch: DetBatch) -> None:
        """Record how long the batch took to load."""
        runner.message_hub.update_scalar("train/data_time", time.perf_counter() - self._last_time)

    def after_train_iter(self, runner: Runner, batch_idx: int, batch: DetBatch,
                         outputs: dict[str, float]) -> None:
        """Time the iteration; draw the bar; log every ``interval`` iterations."""
        now = time.perf_counter()
        hub = runner.message_hub
        hub.update_scalar("train/time", now - self._last_time)
        hub.update_scalar("train/memory", memory_mb(runner.device))
        self._last_time = now
        if runner.progress_bar is not None:
            self._draw_bar(runner)
        if runner.by_epoch:
            due = (runner.iter_in_epoch % self.interval == 0
                   or runner.iter_in_epoch == runner.iters_per_epoch)
        else:
            due = runner.iter % self.interval == 0 or runner.iter == runner.max_iters
        if due:
            self._log(runner)

    def _eta_seconds(self, runner: Runner) -> float:
        return runner.message_hub.get_scalar("train/time").mean(self.interval) * (
            runner.max_iters - runner.iter)

    def _draw_bar(self, runner: Runner) -> None:
        hub = runner.message_hub
        iter_time = hub.get_scalar("train/time").mean(self.interval)
        losses = "  ".join(f"{key[len(TRAIN_PREFIX):]}: {hub.get_scalar(key).current():.4f}"
                           for key in hub.scalar_keys if key.startswith(TRAIN_PREFIX + "loss"))
        if runner.by_epoch:
            done, total = runner.iter_in_epoch, runner.iters_per_epoch
            where = f"epoch {runner.epoch + 1}/{runner.max_epochs}"
        else:
            done, total, where = runner.iter, runner.max_iters, "iter"
        runner.progress_bar.update(done, total, (
            f"{where}  eta {format_duration(self._eta_seconds(runner))}  "
            f"{1.0 / max(iter_time, 1e-9):.2f} it/s  lr {hub.get_scalar('train/lr').current():.3e}"
            f"  mem {hub.get_scalar('train/memory').current():.0f}MB  {losses}"))

    def _window_means(self, runner: Runner) -> dict[str, float]:
        hub = runner.message_hub
        means = {}
        for key in hub.scalar_keys:
            if not key.startswith(TRAIN_PREFIX):
                continue
            buffer = hub.get_scalar(key)
            new_updates = buffer.num_updates - self._logged_updates.get(key, 0)
            if new_updates > 0:
                means[key[len(TRAIN_PREFIX):]] = buffer.mean(new_updates)
                self._logged_updates[key] = buffer.num_updates
        return means

    def _log(self, runner: Runner) -> None:
        means = self._window_means(runner)
        means["memory"] = runner.message_hub.get_scalar("train/memory").current()
        if runner.by_epoch:
            width = len(str(runner.iters_per_epoch))
            where = (f"Epoch(train) [{runner.epoch + 1}]"
                     f"[{runner.iter_in_epoch:>{width}}/{runner.iters_per_epoch}]")
        else:
            where = f"Iter(train) [{runner.iter:>{len(str(runner.max_iters))}}/{runner.max_iters}]"
        shown = {"eta": None, **means}
        ordered = [k for k in LEADING_KEYS if k in shown] + sorted(
            k for k in shown if k not in LEADING_KEYS)
        parts = [f"eta: {format_duration(self._eta_seconds(runner))}" if key == "eta"
                 else f"{key}: {_format_value(key, shown[key])}" for key in ordered]
        extra = FILE_ONLY if runner.progress_bar is not None else None
        runner.logger.info(f"{where}  " + "  ".join(parts), extra=extra)
        runner.visualizer.add_scalars({f"train/{k}": v for k, v in means.items()}, step=runner.iter)

    def after_train_epoch(self, runner: Runner) -> None:
        """Leave the finished epoch's bar on its own line."""
        if runner.progress_bar is not None:
            runner.progress_bar.finish()

    def after_val(self, runner: Runner, metrics: dict[str, float]) -> None:
        """Log the validation metrics and send them to the vis backends."""
        self._last_time = time.perf_counter()  # validation is neither data nor train time
        where = f"Epoch(val) [{runner.epoch}]" if runner.by_epoch else f"Iter(val) [{runner.iter}]"
        runner.logger.info(f"{where}  " + "  ".join(f"{k}: {v:.4f}" for k, v in metrics.items()))
        runner.visualizer.add_scalars({f"val/{k}": v for k, v in metrics.items()},
                                      step=runner.iter)

    def after_test(self, runner: Runner, metrics: dict[str, float]) -> None:
        """Log the test metrics and send them to the vis backends."""
        runner.logger.info("Test  " + "  ".join(f"{k}: {v:.4f}" for k, v in metrics.items()))
        runner.visualizer.add_scalars({f"test/{k}": v for k, v in metrics.items()},
                                      step=runner.iter)
