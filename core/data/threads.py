"""Preparing samples with one intra-op thread, as DataLoader worker processes do.

Per-sample operations on small images gain nothing from torch's intra-op threads, and on a
busy machine their synchronisation costs far more than the work (a 160x160 normalization went
from 0.03 ms to 4 ms with two threads under load). Loading in the main process
(``num_workers = 0``) therefore switches to one thread for the duration of a sample or a
collate and back afterwards; in worker processes torch already uses one thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(1)``, restoring the previous count."""
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
