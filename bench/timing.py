"""Timing shared by the benchmarks: the best of repeated runs."""

from __future__ import annotations

import time
from collections.abc import Callable


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
