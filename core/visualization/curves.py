"""Training curves: the scalars a run logs to ``vis_data/scalars.json`` and their PNG panels.

Used by the curves hook during training and by ``python -m core.tools.analyze_logs``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from core.errors import DataError

SCALAR_FILE = Path("vis_data") / "scalars.json"
STEP_KEY = "step"
PLOT_DPI = 100
#: ``(label, [(step, value), ...])``: one line of a panel.
Line = tuple[str, list[tuple[int, float]]]


def read_scalars(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Parse JSON lines ``{"name": value, ..., "step": step}``; null values are skipped.

    :raises DataError: on a line that is not such an object (names the file and line).
    """
    series: dict[str, list[tuple[int, float]]] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not JSON: {exc.msg}") from None
            if not isinstance(record, dict) or not isinstance(record.get(STEP_KEY), int):
                raise DataError(f"{path}:{number}: expected an object with an int {STEP_KEY!r}")
            for name, value in record.items():
                if name != STEP_KEY and isinstance(value, int | float):
                    series.setdefault(name, []).append((record[STEP_KEY], float(value)))
    return series


def plot_panels(panels: Sequence[tuple[str, list[Line]]], out_file: str | Path,
                columns: int = 1) -> Path:
    """Save ``(title, lines)`` panels as a PNG grid of ``columns`` columns, filled by rows.

    :param panels: per panel its title and ``(label, [(step, value), ...])`` lines.
    """
    rows = max(math.ceil(len(panels) / columns), 1)
    width = 7 if columns == 1 else 4 * columns
    figure = Figure(figsize=(width, 2.8 * rows))  # a fixed layout: half the time of a solver
    axes_grid = figure.subplots(rows, columns, squeeze=False).ravel()
    for axes, (title, lines) in zip(axes_grid, panels, strict=False):
        for label, points in lines:
            steps, values = zip(*points, strict=True)
            axes.plot(steps, values, label=label, marker="o" if len(points) < 20 else None,
                      markersize=3, linewidth=1.3)
        axes.set(title=title, xlabel="iteration", ylabel=title)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    for axes in axes_grid[len(panels):]:
        axes.set_axis_off()
    figure.subplots_adjust(left=0.2 / columns + 0.02, right=0.98, bottom=0.6 / (2.8 * rows),
                           top=1 - 0.4 / (2.8 * rows), hspace=0.55, wspace=0.35)
    path = Path(out_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=PLOT_DPI)
    return path
