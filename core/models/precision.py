"""Mixed precision at the heads: under AMP (``amp = true``) the layers run in bf16 (CPU) or
fp16 (CUDA) and what follows them (decoding, assignment, losses, NMS) in float32, so box
coordinates keep float32's resolution (bf16 has 8 significant bits: 1 px steps at 256 px).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor


@contextmanager
def float32_region(device: torch.device) -> Iterator[None]:
    """Autocast off on ``device``'s type: the enclosed ops run in their inputs' dtype."""
    with torch.autocast(device.type, enabled=False):
        yield


def levels_in_float32(outputs: Sequence[Sequence[Tensor]]) -> tuple[list[Tensor], ...]:
    """Each per-level output of a head's ``forward`` (a list per branch) as float32."""
    return tuple([level.float() for level in branch] for branch in outputs)
