"""Process settings that take overhead out of CPU training and inference.

Two costs that are not arithmetic, measured on a YOLOv8-n training step (256 px, batch 8,
2 threads; ``bench/bench_yolo.py --profile``):

* **Page faults.** glibc's allocator hands blocks above its mmap threshold back to the
  system when they are freed and gives them out again as fresh pages, which the kernel zeroes
  on first touch: about 15,000 minor page faults per step, each forward pass faulting in
  its activations anew. :func:`keep_freed_memory` raises the mmap threshold to glibc's
  maximum (32 MiB) and the trim threshold to 1 GiB, so freed activation memory stays in the
  heap for the next step (a few page faults per step; the process keeps up to 1 GiB of
  freed memory).
* **Subnormal floats.** Gradients and activations below 1.2e-38 take a slow microcode path
  on x86. :func:`flush_denormals` sets flush-to-zero and denormals-are-zero (as TensorFlow
  does by default on a CPU): such values become 0, every other float32 operation is
  unchanged. Config key ``flush_denormal`` (default true); threads created afterwards
  (torch's OpenMP pool, loader workers) inherit the setting.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

import torch

LOGGER = logging.getLogger(__name__)

#: ``mallopt`` parameters (glibc ``malloc.h``)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
#: glibc's largest mmap threshold on 64-bit systems (``DEFAULT_MMAP_THRESHOLD_MAX``)
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 1 << 30
TOP_PAD_BYTES = 64 << 20


@functools.cache
def keep_freed_memory() -> bool:
    """Keep freed blocks up to 32 MiB in the heap (see the module doc); once per process.

    :returns: whether the C library took the settings (false off glibc, e.g. macOS or musl).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return all(mallopt(param, value) == 1 for param, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES), (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
        (M_TOP_PAD, TOP_PAD_BYTES)))


def flush_denormals(enabled: bool) -> bool:
    """Set (or clear) flush-to-zero for subnormal floats on this thread and the threads it
    creates. :returns: whether the CPU supports it (x86 with SSE3)."""
    return bool(torch.set_flush_denormal(enabled))


def apply_cpu_settings(flush_denormal: bool) -> str:
    """Both settings for a run; returns what the run's first log line says about them."""
    kept = keep_freed_memory()
    flushed = flush_denormals(flush_denormal) and flush_denormal
    parts = ["subnormals flushed to zero" if flushed else "subnormals kept"]
    if not kept:
        parts.append("allocator defaults (not glibc)")
    return ", ".join(parts)
