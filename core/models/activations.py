"""Activations that choose in-place computation only where it saves work.

An in-place SiLU under autograd costs an extra copy: its backward needs the input
(``silu'(x)`` is a function of ``x``, not of the output), so autograd clones the input before
overwriting it. Out of place, the output is a fresh tensor and the input is kept without a copy.
Where autograd records nothing (inference, ``torch.no_grad``), in place saves an allocation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class InferenceInPlaceSiLU(nn.Module):
    """``x * sigmoid(x)``, any shape to the same shape: in place when autograd does not record
    the call (no grad mode, or an input that requires no gradient), out of place otherwise."""

    def forward(self, x: Tensor) -> Tensor:
        recorded = torch.is_grad_enabled() and x.requires_grad
        return F.silu(x, inplace=not recorded)
