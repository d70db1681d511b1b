"""The cost of PositiveSamplesHook on the demo, measured inside one run.

    python bench/bench_positive_samples.py [--interval 50] [--set KEY=VALUE ...]
                                           [--work-dir work_dirs/bench_positive_samples]

Trains the demo config (``--set`` overrides, e.g. ``train.max_epochs=2`` for a shorter run)
with the hook switched on at ``--interval`` and prints the run's wall time (building the runner
included), the time inside the hook (forward pass, assignment, drawing, sending), its share,
and the time per drawing against the mean time of a training iteration.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from core.engine.full_config import load_full_config
from core.engine.runner import Runner
from core.visualization.hooks import PositiveSamplesHook

DEMO = Path(__file__).resolve().parents[1] / (
    "plugins/retinanet/configs/retinanet_tinynet_fpn_demo_shapes.toml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=int, default=50)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--work-dir", type=Path, default=Path("work_dirs/bench_positive_samples"))
    args = parser.parse_args()
    overrides = [*args.set, "default_hooks.positive_samples.enabled=true",
                 f"default_hooks.positive_samples.interval={args.interval}"]
    start = time.perf_counter()
    config = load_full_config(str(DEMO), overrides, counts_from_data=True)  # as core.run reads it
    runner = Runner.from_config(config, work_dir=str(args.work_dir), config_path=str(DEMO))
    (hook,) = [h for h in runner.hooks if isinstance(h, PositiveSamplesHook)]
    runner.train()
    total = time.perf_counter() - start
    iteration = runner.message_hub.get_scalar("train/time").mean(runner.iter)
    per_drawing = hook.seconds / max(hook.drawings, 1)
    print(f"demo wall time {total:.1f} s ({runner.iter} iterations, {iteration:.3f} s each); "
          f"PositiveSamplesHook {hook.drawings} drawings, {hook.seconds:.2f} s "
          f"({100 * hook.seconds / total:.2f} % of the run); {per_drawing:.3f} s per drawing "
          f"= {100 * per_drawing / (args.interval * iteration):.2f} % of {args.interval} "
          "iterations")


if __name__ == "__main__":
    main()
