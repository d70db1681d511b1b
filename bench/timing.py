"""Timing shared by the benchmarks: the best of interleaved runs."""

from __future__ import annotations

import time
from collections.abc import Callable


def interleaved_best(
    fns: dict[str, Callable[[], object]], warmup: int, repeats: int
) -> dict[str, float]:
    """Best (least) seconds of each function over ``repeats`` runs, run in turn so that load
    changes on a shared machine hit all of them alike; the least time is the one least
    disturbed by other processes."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}
