"""The report's charts (matplotlib, PNG): error bars, AP by bin, recall against IoU."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PLOT_DPI = 100


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=PLOT_DPI)
    return path


def save_bars(values: Sequence[tuple[str, float | None]], path: Path, title: str,
              xlabel: str, horizontal: bool = False) -> Path:
    """A bar per ``(label, value)``; ``None`` values are drawn as "n/a" without a bar."""
    figure = Figure(figsize=(6.4, 0.45 * len(values) + 1.2) if horizontal else (6.4, 3.4),
                    layout="constrained")
    axes = figure.subplots()
    labels = [label for label, _ in values]
    heights = [0.0 if v is None else v for _, v in values]
    positions = np.arange(len(values))
    bars = (axes.barh if horizontal else axes.bar)(positions, heights, color="#4c72b0")
    for bar, (_, value) in zip(bars, values, strict=True):
        text = "n/a" if value is None else f"{value:.2f}"
        if horizontal:
            axes.annotate(text, (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                          xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        else:
            axes.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                          xytext=(0, 2), textcoords="offset points", ha="center", fontsize=8)
    if horizontal:
        axes.set_yticks(positions, labels)
        axes.invert_yaxis()
        axes.set_xlabel(xlabel)
        axes.set_xlim(0, max([*heights, 1e-6]) * 1.2)
    else:
        axes.set_xticks(positions, labels, fontsize=8)
        axes.set_ylabel(xlabel)
        axes.set_ylim(0, max([*heights, 1e-6]) * 1.15)
    axes.set_title(title)
    axes.grid(alpha=0.3, axis="x" if horizontal else "y")
    return _save(figure, path)


def save_recall_iou(thresholds: np.ndarray, recall: np.ndarray, path: Path) -> Path:
    """Mean recall over the classes (``(T,)``) against the IoU threshold (``(T,)``)."""
    figure = Figure(figsize=(6.4, 3.4), layout="constrained")
    axes = figure.subplots()
    axes.plot(thresholds, recall, marker="o", markersize=3)
    axes.set(title="recall against IoU threshold (100 detections per image)",
             xlabel="IoU threshold", ylabel="recall", ylim=(0, 1.02), xlim=(0.05, 1.0))
    axes.grid(alpha=0.3)
    return _save(figure, path)
