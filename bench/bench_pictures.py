"""The cost of the default pictures on the demo, measured inside one run.

    python bench/bench_pictures.py [--work-dir work_dirs/bench_pictures] [--compare]

Trains the demo config as it is (no overrides) in this process and times every call of the
picture hooks (``DetVisualizationHook``, ``CurvesHook``, ``ValPlotsHook``, ``RunSummaryHook``);
prints the run's wall time (building the runner included), the time spent in those hooks and
its share. ``--compare`` also times two whole ``python -m core.run`` runs, with and without the
pictures (``default_hooks.visualization``, ``.curves``, ``.val_plots`` = false): on a shared
machine the difference of two runs is noisier than the in-run measurement.
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.config import load_config
from core.engine.hooks.base import Hook
from core.engine.runner import Runner
from core.visualization.hooks import CurvesHook, DetVisualizationHook, RunSummaryHook, ValPlotsHook

DEMO = Path(__file__).resolve().parents[1] / (
    "plugins/retinanet/configs/retinanet_tinynet_fpn_demo_shapes.toml")
PICTURE_HOOKS = (DetVisualizationHook, CurvesHook, ValPlotsHook, RunSummaryHook)
WITHOUT = ["--set", "default_hooks.visualization=false", "--set", "default_hooks.curves=false",
           "--set", "default_hooks.val_plots=false"]


def _timed(method: Callable[..., Any], spent: list[float]) -> Callable[..., Any]:
    @functools.wraps(method)
    def run(*args: Any) -> Any:
        start = time.perf_counter()
        try:
            return method(*args)
        finally:
            spent[0] += time.perf_counter() - start

    return run


def measure_in_run(work_dir: Path) -> tuple[float, float]:
    """``(wall seconds of the run, seconds inside the picture hooks)``; prints each hook's."""
    spent: dict[str, list[float]] = {}
    start = time.perf_counter()
    runner = Runner.from_config(load_config(DEMO), work_dir=str(work_dir),
                                config_path=str(DEMO))
    for hook in runner.hooks:
        if isinstance(hook, PICTURE_HOOKS):
            own = spent.setdefault(type(hook).__name__, [0.0])
            for name in vars(Hook):
                if callable(getattr(Hook, name)) and not name.startswith("_"):
                    setattr(hook, name, _timed(getattr(hook, name), own))
    runner.train()
    for name, (seconds,) in spent.items():
        print(f"  {name}: {seconds:.2f} s")
    return time.perf_counter() - start, sum(seconds for seconds, in spent.values())


def whole_run(extra: list[str], work_dir: Path) -> float:
    """Seconds of one ``python -m core.run`` demo run (start-up included)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "core.run", str(DEMO), *extra, "--work-dir",
                    str(work_dir)], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, default=Path("work_dirs/bench_pictures"))
    parser.add_argument("--compare", action="store_true",
                        help="also time whole runs with and without the pictures")
    args = parser.parse_args()
    total, pictures = measure_in_run(args.work_dir / "in_run")
    print(f"demo wall time {total:.1f} s, of which the pictures {pictures:.2f} s "
          f"({100 * pictures / total:.2f} %)")
    if args.compare:
        with_pictures = whole_run([], args.work_dir / "with")
        without = whole_run(WITHOUT, args.work_dir / "without")
        print(f"whole runs: {with_pictures:.1f} s with pictures, {without:.1f} s without "
              f"({100 * (with_pictures / without - 1):+.1f} %)")


if __name__ == "__main__":
    main()
