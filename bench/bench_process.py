"""Each framework of a speed comparison in its own process, as its users run it.

plugdet's engine applies process-wide CPU settings for every run
(:func:`core.engine.cpu_tuning.apply_cpu_settings`: freed memory kept in glibc's heap, subnormal
floats flushed to zero); a torchvision user has neither. So a benchmark script re-invokes
itself once per side with the hidden arguments ``--worker --side ours|torchvision``; the
worker prints its seconds as one ``RESULT {json}`` line. The parent runs ``--rounds``
alternating rounds (ours, torchvision, ours, torchvision, ...) and keeps the least seconds of
each measure, the run least disturbed by other load. Both workers build torchvision's model
from the same seed (ours copies its weights) and the same seeded input.

Options shared by the scripts (:func:`add_arguments`); without them ours runs with plugdet's
default settings for these detectors: float32 (the same arithmetic as torchvision),
channels-last, and the engine's CPU settings:

* ``--amp``: ours under bf16 autocast where the CPU computes bf16 natively (what
  ``amp = "auto"`` picks; elsewhere ours stays float32); torchvision stays float32, its
  default;
* ``--ours-contiguous``: ours in NCHW memory format instead of channels-last;
* ``--no-cpu-settings``: the ours worker skips :func:`~core.engine.cpu_tuning.apply_cpu_settings`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
from timing import cpu_model

from core.engine.cpu_tuning import apply_cpu_settings
from core.engine.run_config import cpu_has_native_bf16

NUM_THREADS = 2
#: ratio ours / torchvision each measure must stay at or under, unless a script says otherwise
TARGET_RATIO = 0.9
SIDES = ("ours", "torchvision")
RESULT_PREFIX = "RESULT "
REPO = Path(__file__).resolve().parent.parent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every comparison script shares, and the hidden worker arguments."""
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternating rounds of the two processes (best kept)")
    parser.add_argument("--amp", action="store_true",
                        help="ours under bf16 autocast on a CPU with native bf16")
    parser.add_argument("--ours-contiguous", action="store_true",
                        help="ours in NCHW memory format instead of channels-last")
    parser.add_argument("--no-cpu-settings", action="store_true",
                        help="the ours process skips the engine's CPU settings")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)


def shared_flags(args: argparse.Namespace) -> list[str]:
    """The shared options of ``args`` as a worker's command-line arguments."""
    flags = {"--amp": args.amp, "--ours-contiguous": args.ours_contiguous,
             "--no-cpu-settings": args.no_cpu_settings}
    return [flag for flag, given in flags.items() if given]


def start_worker(args: argparse.Namespace) -> str:
    """The first call of a worker, before any model or tensor exists: the engine's CPU
    settings in the ours process (unless ``--no-cpu-settings``), then the thread count.

    :returns: what the process runs with, for the report.
    """
    settings = "no process settings"
    if args.side == "ours":
        settings = ("engine CPU settings off" if args.no_cpu_settings
                    else f"engine CPU settings ({apply_cpu_settings(True)})")
    torch.set_num_threads(NUM_THREADS)
    return settings


def autocast_dtype(args: argparse.Namespace) -> torch.dtype | None:
    """bf16 for ours under ``--amp`` on a CPU with native bf16, else ``None`` (float32)."""
    if args.side == "ours" and args.amp and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def precision(dtype: torch.dtype | None) -> AbstractContextManager[Any]:
    """bf16 autocast on the CPU for ``dtype``, or nothing for float32."""
    return nullcontext() if dtype is None else torch.autocast("cpu", dtype=dtype)


def side_label(args: argparse.Namespace, dtype: torch.dtype | None) -> str:
    """E.g. ``ours (float32, channels-last)`` or ``torchvision (float32)``."""
    if args.side == "torchvision":
        return "torchvision (float32)"
    name = "float32" if dtype is None else "bf16 autocast"
    if args.amp and dtype is None:
        name += ", no native bf16"
    layout = "NCHW" if args.ours_contiguous else "channels-last"
    return f"ours ({name}, {layout})"


def finish_worker(args: argparse.Namespace, settings: str, dtype: torch.dtype | None,
                  seconds: dict[str, float]) -> None:
    """Print the worker's one ``RESULT`` line: its measures' seconds and how it ran."""
    result = {"label": side_label(args, dtype), "settings": settings,
              "threads": torch.get_num_threads(), "seconds": seconds}
    print(RESULT_PREFIX + json.dumps(result))


def run_worker(script: str, side: str, argv: list[str]) -> dict[str, Any]:
    """Run ``script`` as the worker of ``side`` with ``argv`` and return its result."""
    command = [sys.executable, script, "--worker", "--side", side, *argv]
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"the {side} worker failed with exit status {out.returncode}")
    line = next(line for line in out.stdout.splitlines() if line.startswith(RESULT_PREFIX))
    result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX):])
    return result


def best_of_rounds(script: str, argv: list[str], rounds: int) -> dict[str, dict[str, Any]]:
    """Per side, the result of ``rounds`` alternating worker runs with the least seconds of
    each measure (each measure's least over the rounds)."""
    best: dict[str, dict[str, Any]] = {}
    for _ in range(rounds):
        for side in SIDES:
            result = run_worker(script, side, argv)
            kept = best.setdefault(side, result)
            kept["seconds"] = {name: min(value, result["seconds"][name])
                               for name, value in kept["seconds"].items()}
    return best


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def print_header(title: str, args: argparse.Namespace) -> None:
    """What was compared and on which machine: CPU model, load, threads, repeats, rounds."""
    print(title)
    print(f"CPU {cpu_model()}; {load_average()}; torch {torch.__version__}, {NUM_THREADS} "
          f"threads per process; each side in its own process, best of {args.repeats} after "
          f"{args.warmup} warm-up runs, {args.rounds} alternating rounds")


def print_sides(best: dict[str, dict[str, Any]]) -> None:
    """How each side's process ran (settings and thread count)."""
    for side in SIDES:
        result = best[side]
        print(f"  {result['label']}: {result['settings']}, {result['threads']} threads")


def ratio_line(measure: str, best: dict[str, dict[str, Any]],
               target: float = TARGET_RATIO) -> str:
    """``measure``: each side's seconds and the ratio ours / torchvision against ``target``."""
    ours, theirs = (best[side]["seconds"][measure] for side in SIDES)
    ratio = ours / theirs
    verdict = "ok" if ratio <= target else "OVER"
    return (f"  {measure:<10} {best['ours']['label']} {ours:.4f} s  {best['torchvision']['label']} "
            f"{theirs:.4f} s  ratio {ratio:.3f} (target <= {target}) {verdict}")
