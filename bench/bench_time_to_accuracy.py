"""Time to accuracy: mAP50 against wall time of a whole training command, from scratch.

Runs ``python -m core.run CONFIG`` (the raccoon set by default: 160 training photographs,
40 validation ones, no pretrained weights) with validation every ``--val-interval`` epochs,
and stamps each ``Epoch(val)`` line (and the end-of-training ``Test`` line, when the config
tests at the end) with the seconds since the command started (start-up, data reading,
training and the validations so far all count). Prints the curve, the first
point at or above ``--target`` and writes the curve as a PNG (``--plot``).

    python bench/bench_time_to_accuracy.py [--config PATH] [--val-interval 8] [--target 0.85]
        [--plot docs/images/raccoon_time_to_accuracy.png] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import cpu_model

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "plugins/yolo/configs/yolov8_n_scratch_raccoon.toml"
VAL_LINE = re.compile(r"Epoch\(val\) \[(\d+)\].*coco/bbox_mAP_50: ([0-9.]+)")
#: the end-of-training test (``train.test_at_end``, with ``test_tta`` its flip views merged)
TEST_LINE = re.compile(r"Test  .*coco/bbox_mAP_50: ([0-9.]+)")


def run(config: Path, val_interval: int, overrides: list[str], work_dir: str
        ) -> tuple[list[tuple[float, int, float]], float]:
    """``([(wall seconds, epoch, mAP50)], total wall seconds)`` of one training command."""
    command = [sys.executable, "-m", "core.run", str(config), "--work-dir", work_dir,
               "--set", f"train.val_interval={val_interval}"]
    for item in overrides:
        command += ["--set", item]
    curve = []
    start = time.perf_counter()
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as process:
        assert process.stdout is not None
        for line in process.stdout:
            match, test = VAL_LINE.search(line), TEST_LINE.search(line)
            if match:
                curve.append((time.perf_counter() - start, int(match[1]), float(match[2])))
            elif test:  # after the last epoch's validation
                curve.append((time.perf_counter() - start, curve[-1][1] if curve else 0,
                              float(test[1])))
            if match or test:
                print(f"  {curve[-1][0]:6.1f} s  epoch {curve[-1][1]:3d}  mAP50 "
                      f"{curve[-1][2]:.4f}{'  (end-of-training test)' if test else ''}",
                      flush=True)
    if process.returncode:
        raise SystemExit(f"training failed (exit {process.returncode}): {' '.join(command)}")
    return curve, time.perf_counter() - start


def plot(curve: list[tuple[float, int, float]], target: float, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.6))
    axes.plot([c[0] for c in curve], [c[2] for c in curve], marker="o")
    axes.axhline(target, color="grey", linestyle="--", linewidth=1)
    axes.axvline(300, color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("wall time of the training command (s)")
    axes.set_ylabel("val mAP50")
    axes.set_ylim(0, 1)
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--val-interval", type=int, default=8)
    parser.add_argument("--target", type=float, default=0.85)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    one, five, _ = os.getloadavg()
    print(f"{args.config.name} on {cpu_model()}, {os.cpu_count()} CPUs, load average "
          f"{one:.2f} {five:.2f}; validation every {args.val_interval} epochs")
    with tempfile.TemporaryDirectory(prefix="time_to_accuracy_") as work_dir:
        curve, total = run(args.config, args.val_interval, args.set, work_dir)
    reached = next((c for c in curve if c[2] >= args.target), None)
    best = max(curve, key=lambda c: c[2])
    print(f"whole command {total:.0f} s; best mAP50 {best[2]:.4f} at epoch {best[1]} "
          f"({best[0]:.0f} s)")
    print(f"mAP50 >= {args.target}: " + (f"reached at epoch {reached[1]} after {reached[0]:.0f} s"
                                          if reached else "not reached"))
    if args.plot:
        plot(curve, args.target, f"{args.config.stem}, {cpu_model()}, 2 threads", args.plot)
        print(f"curve: {args.plot}")


if __name__ == "__main__":
    main()
