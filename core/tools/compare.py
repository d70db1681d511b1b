"""Compare training runs: a static web page of their differences.

    python -m core.tools.compare RUN_A RUN_B [RUN ...] [--out DIR]

writes ``DIR/index.html`` (default ``./compare``) with its pictures beside it: the keys of the
saved ``config.toml`` files that differ, the validation metrics at each run's best epoch and
at the last epoch all runs validated at (with the deltas to the first run), the AP per class,
the TIDE breakdown when every run has a ``plugdet analyze`` report, and the training curves
overlaid. A run's analysis page lists the comparisons it is part of.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.analysis.compare import write_comparison
from core.analysis.run_dir import read_run
from core.errors import ConfigError
from core.tools.cli import check_output_folder, make_output_folder, run_tool

EXAMPLES = """examples:
  {prog} work_dirs/demo/20260101_120000 work_dirs/demo/20260102_090000
  {prog} RUN_A RUN_B RUN_C --out compare_lr
"""


def run_compare(args: argparse.Namespace) -> str:
    """Compare the runs; returns the summary line."""
    if len(args.runs) < 2:
        raise ConfigError(f"give at least two run directories, got {len(args.runs)}")
    runs = [read_run(path) for path in args.runs]
    out = make_output_folder(check_output_folder(Path(args.out)))
    page = write_comparison(runs, out)
    lines = []
    for label, run in zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", runs, strict=False):
        best = run.best()
        shown = "no validation" if best is None else (
            f"best {run.metric} = {best.metrics[run.metric]:.4f}")  # type: ignore[index]
        lines.append(f"{label} {run.name}: {shown}")
    return "\n".join([*lines, f"comparison: {page}"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``compare`` (shared with ``plugdet compare``)."""
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR",
                        help="training run directories; the first is the reference")
    parser.add_argument("--out", default="compare", metavar="DIR",
                        help="the page's folder (default ./compare)")


def main(argv: list[str] | None = None, prog: str = "python -m core.tools.compare") -> int:
    """Run the tool; returns the exit status."""
    return run_tool(argv, prog, __doc__, EXAMPLES, add_arguments, run_compare)


if __name__ == "__main__":
    sys.exit(main())
