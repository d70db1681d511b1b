"""CurvesHook: one ``curves.png`` of the run (losses, learning rate, validation metrics; the
panels of :func:`~core.visualization.curves.curve_panels`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from core.engine.hooks.base import PRIORITIES, Hook
from core.errors import writing
from core.visualization.curves import SCALAR_FILE, curve_panels, plot_panels, read_scalars

if TYPE_CHECKING:
    from core.engine.runner import Runner

CURVE_COLUMNS = 3


class CurvesHook(Hook):
    """Redraw ``work_dir/<file_name>`` after a validation and at the end of training.

    Reads the scalars the logger sent to the local vis backend (``vis_data/scalars.json``), so
    the curves cover a resumed run's earlier part too; without ``LocalVisBackend`` it draws
    nothing and says so once. Drawing the figure takes about 0.4 s on a CPU, so after a
    validation it is redrawn only when the last drawing is ``min_interval`` seconds old: a run
    that validates every few seconds (the demo) redraws a few times, one that validates every
    few minutes redraws after each validation.

    :param file_name: the image's name inside the run directory.
    :param min_interval: seconds between two drawings after validations (0: every time).
    """

    priority = PRIORITIES["LOW"]  # after the logger has written the metrics

    def __init__(self, file_name: str = "curves.png", min_interval: float = 30.0) -> None:
        self.file_name = file_name
        self.min_interval = min_interval
        self._warned = False
        self._last_drawn: float | None = None

    def pictures(self, runner: Runner) -> list[Path]:
        """What this hook wrote (for the run's closing summary)."""
        path = runner.work_dir / self.file_name
        return [path] if path.is_file() else []

    def after_val(self, runner: Runner, metrics: dict[str, float]) -> None:
        now = time.monotonic()
        if self._last_drawn is None or now - self._last_drawn >= self.min_interval:
            self._draw(runner)

    def after_train(self, runner: Runner) -> None:
        self._draw(runner)

    def _draw(self, runner: Runner) -> None:
        if runner.rank != 0:
            return
        scalar_file = runner.work_dir / SCALAR_FILE
        if not scalar_file.is_file():
            if not self._warned:
                runner.logger.warning(f"no curves: {scalar_file} is missing (the curves need "
                                      "the LocalVisBackend)")
                self._warned = True
            return
        panels = curve_panels(read_scalars(scalar_file))
        if panels:
            path = runner.work_dir / self.file_name
            with writing(path):
                plot_panels(panels, path, columns=CURVE_COLUMNS)
            self._last_drawn = time.monotonic()
