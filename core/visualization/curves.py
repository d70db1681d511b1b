"""Training curves: the scalars a run logs to ``vis_data/scalars.json`` and their PNG panels.

Used by the curves hook during training, by ``python -m core.tools.analyze_logs`` and by the
analysis report.
"""

from __future__ import annotations

import json
import math
import re
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
LOSS_PREFIX = "train/loss"
VAL_LOSS_PREFIX = "val/loss"
LR_KEY = "train/lr"
VAL_PREFIX = "val/"
#: A per-class value: ``coco/bbox_AP_<class>``, ``pascal_voc/AP_<class>``.
PER_CLASS = re.compile(r"(?:^|/)(?:bbox_)?AP_(?!\d+$)(?P<name>.+)$")
#: A variant of a metric at one IoU (``_50``, ``_75``) or one object size (``_s``, ``_m``, ``_l``).
VARIANT = re.compile(r"^(?P<base>.+)_(?P<suffix>\d+|[sml])$")
#: What a metric logs when the data leave it undefined (COCO: no object of that size).
UNDEFINED = -1.0


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


def _defined(points: list[tuple[int, float]]) -> bool:
    """Whether a series has a value other than the undefined -1 (or NaN)."""
    return any(value != UNDEFINED and not math.isnan(value) for _, value in points)


def _metric_panels(series: dict[str, list[tuple[int, float]]]) -> list[tuple[str, list[Line]]]:
    """Validation metrics as panels: a metric with its IoU variants (``mAP``, ``mAP_50``,
    ``mAP_75``), its size variants in a panel of their own, every other metric alone, the
    per-class values in one panel, in the order they were logged; series that are undefined
    throughout are left out."""
    metrics = {name.removeprefix(VAL_PREFIX): points for name, points in series.items()
               if name.startswith(VAL_PREFIX) and not name.startswith(VAL_LOSS_PREFIX)
               and _defined(points)}
    grouped: dict[str, list[Line]] = {}
    per_class: list[Line] = []
    for name, points in metrics.items():
        match, variant = PER_CLASS.search(name), VARIANT.match(name)
        if match:
            per_class.append((match["name"], points))
        elif variant and variant["base"] in metrics:
            size = not variant["suffix"].isdigit()
            title = variant["base"] + (" by object size" if size else "")
            grouped.setdefault(title, []).append((name.rsplit("/", 1)[-1], points))
        else:
            grouped.setdefault(name, []).insert(0, (name.rsplit("/", 1)[-1], points))
    return list(grouped.items()) + ([("AP per class", per_class)] if per_class else [])


def curve_panels(series: dict[str, list[tuple[int, float]]]) -> list[tuple[str, list[Line]]]:
    """The panels of ``curves.png``: the training loss terms, the validation loss terms beside
    them (when logged), the learning rate, then the validation metrics (see
    :func:`_metric_panels`); panels without points are left out.

    :param series: ``name -> [(iteration, value), ...]`` as read from ``scalars.json``.
    """
    panels: list[tuple[str, list[Line]]] = []
    for title, prefix in (("loss", LOSS_PREFIX), ("val loss", VAL_LOSS_PREFIX)):
        lines = [(name.split("/", 1)[1], points) for name, points in sorted(series.items())
                 if name.startswith(prefix)]
        if lines:
            panels.append((title, lines))
    if LR_KEY in series:
        panels.append(("lr", [("lr", series[LR_KEY])]))
    return panels + _metric_panels(series)


def plot_panels(panels: Sequence[tuple[str, list[Line]]], out_file: str | Path,
                columns: int = 1, xlabel: str = "iteration") -> Path:
    """Save ``(title, lines)`` panels as a PNG grid of ``columns`` columns, filled by rows.

    :param panels: per panel its title and ``(label, [(x, value), ...])`` lines.
    :param xlabel: what ``x`` is (the training iteration unless told otherwise).
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
        axes.set(title=title, xlabel=xlabel, ylabel=title)
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
