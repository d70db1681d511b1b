"""Plot training curves of one or several runs from ``vis_data/scalars.json``.

    python -m core.tools.analyze_logs WORKDIR [WORKDIR ...] --keys loss_cls bbox_mAP --out F.png

A WORKDIR is a run directory (holding ``vis_data/scalars.json``), a directory of runs (the
latest run, by name, is used) or the ``scalars.json`` file itself. A key matches every scalar
whose name is the key or ends with ``/KEY``, so ``bbox_mAP`` finds ``val/coco/bbox_mAP``.
The x axis is the step the scalar was logged at (the training iteration).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs

from core.errors import DataError
from core.visualization.curves import SCALAR_FILE, Line, plot_panels, read_scalars


@attrs.define
class RunLog:
    """The scalars of one run: ``series[name] = [(step, value), ...]`` in file order."""

    label: str
    path: Path
    series: dict[str, list[tuple[int, float]]]


def find_scalar_file(path: str | Path) -> Path:
    """The ``scalars.json`` of a run dir, of the latest run in a dir of runs, or ``path`` itself.

    :raises FileNotFoundError: when none is found.
    """
    path = Path(path)
    if path.is_file():
        return path
    if (path / SCALAR_FILE).is_file():
        return path / SCALAR_FILE
    runs = sorted(p for p in path.glob("*") if (p / SCALAR_FILE).is_file())
    if runs:
        return runs[-1] / SCALAR_FILE
    raise FileNotFoundError(f"{path}: no {SCALAR_FILE} in it or in any run directory under it")


def load_run(path: str | Path, label: str | None = None) -> RunLog:
    """Read a run; its label defaults to ``<parent>/<run dir>`` of the scalar file."""
    scalar_file = find_scalar_file(path)
    run_dir = scalar_file.parent.parent if scalar_file.parent.name == "vis_data" else None
    default = f"{run_dir.parent.name}/{run_dir.name}" if run_dir else scalar_file.stem
    return RunLog(label or default, scalar_file, read_scalars(scalar_file))


def match_key(names: Sequence[str], key: str) -> list[str]:
    """Scalar names equal to ``key`` or ending with ``/key``, sorted."""
    return sorted(n for n in names if n == key or n.endswith("/" + key))


def curve_panels(runs: Sequence[RunLog], keys: Sequence[str]) -> list[list[Line]]:
    """Per key, the ``(label, [(step, value), ...])`` lines of every matching scalar of every
    run; the label is the scalar name, prefixed by the run label when there are several runs.

    :raises KeyError: a key matches no scalar of any run (the message lists what exists).
    """
    panels = []
    for key in keys:
        lines = []
        for run in runs:
            for name in match_key(list(run.series), key):
                label = run.label if len(runs) > 1 else ""
                lines.append((f"{label} {name}".strip(), run.series[name]))
        if not lines:
            available = sorted({n for run in runs for n in run.series})
            raise KeyError(f"key {key!r} matches no scalar; available: {', '.join(available)}")
        panels.append(lines)
    return panels


def plot_curves(runs: Sequence[RunLog], keys: Sequence[str], out_file: str | Path) -> Path:
    """One panel per key (see :func:`curve_panels`), saved as PNG."""
    return plot_panels(list(zip(keys, curve_panels(runs, keys), strict=True)), out_file)


def summary_lines(runs: Sequence[RunLog], keys: Sequence[str]) -> list[str]:
    """``run  name  last=  min=  max=`` for every plotted series."""
    lines = []
    for run in runs:
        for key in keys:
            for name in match_key(list(run.series), key):
                values = [v for _, v in run.series[name] if math.isfinite(v)]
                if values:
                    lines.append(f"{run.label}  {name}  last={values[-1]:.4f}  "
                                 f"min={min(values):.4f}  max={max(values):.4f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.tools.analyze_logs",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("work_dirs", nargs="+", help="run dirs, dirs of runs or scalars.json")
    parser.add_argument("--keys", nargs="+", required=True,
                        help="scalar names or name suffixes (e.g. loss_cls bbox_mAP)")
    parser.add_argument("--legend", nargs="+", help="one label per WORKDIR")
    parser.add_argument("--out", default="curves.png", help="output PNG (default curves.png)")
    args = parser.parse_args(argv)
    if args.legend and len(args.legend) != len(args.work_dirs):
        parser.error(f"--legend: {len(args.legend)} labels for {len(args.work_dirs)} runs")
    labels = args.legend or [None] * len(args.work_dirs)
    try:
        runs = [load_run(path, label) for path, label in zip(args.work_dirs, labels, strict=True)]
        out = plot_curves(runs, args.keys, args.out)
    except (FileNotFoundError, DataError, KeyError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(runs, args.keys)))
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
