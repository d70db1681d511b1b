"""Timing shared by the benchmarks: the best of repeated (or interleaved) runs, and the CPU's
name to print beside every figure."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def best_seconds(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    """Best (least) seconds of ``fn`` over ``repeats`` runs after ``warmup`` untimed ones; the
    least time is the one least disturbed by other processes on a shared machine."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def interleaved_best(fns: dict[str, Callable[[], object]], warmup: int,
                     repeats: int) -> dict[str, float]:
    """Best (least) seconds of each function, the functions run in turn so that load changes
    on a shared machine hit all of them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def cpu_model() -> str:
    """The CPU's ``model name`` from ``/proc/cpuinfo`` (``unknown CPU`` where there is none)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown CPU"
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else "unknown CPU"
