"""The cost of the default pictures: the demo's wall time with and without them.

    python bench/bench_pictures.py [--rounds 1] [--work-dir work_dirs/bench_pictures]

Runs ``python -m core.run`` on the demo config as it is (predictions drawn at each validation,
``curves.png`` after each validation, PR curves and confusion matrix at the end, the closing
summary) and with ``default_hooks.visualization``, ``.curves`` and ``.val_plots`` set to
false, alternately; the best round of each counts. Prints both wall times and the relative
cost.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / (
    "plugins/retinanet/configs/retinanet_tinynet_fpn_demo_shapes.toml")
WITHOUT = ["--set", "default_hooks.visualization=false", "--set", "default_hooks.curves=false",
           "--set", "default_hooks.val_plots=false"]


def wall_time(extra: list[str], work_dir: Path) -> float:
    """Seconds of one demo run (the process, start-up included)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "core.run", str(DEMO), *extra, "--work-dir",
                    str(work_dir)], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--work-dir", type=Path, default=Path("work_dirs/bench_pictures"))
    args = parser.parse_args()
    best = {"with pictures": float("inf"), "without": float("inf")}
    for _ in range(args.rounds):
        best["with pictures"] = min(best["with pictures"],
                                    wall_time([], args.work_dir / "with"))
        best["without"] = min(best["without"], wall_time(WITHOUT, args.work_dir / "without"))
    cost = 100 * (best["with pictures"] / best["without"] - 1)
    print(f"demo wall time: {best['with pictures']:.1f} s with pictures, "
          f"{best['without']:.1f} s without: pictures cost {cost:+.1f} %")


if __name__ == "__main__":
    main()
