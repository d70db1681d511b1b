"""Pieces shared by the enhance layers: channel reduction and the identity-at-init gate."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from core.errors import ConfigError, require_positive_int

#: ``GATE_SCALE * sigmoid(0) == 1``: a gate whose logits come from a zero-initialised conv
#: passes its input through unchanged, so a new attention layer starts as the identity.
GATE_SCALE = 2.0


def identity_gate(logits: Tensor) -> Tensor:
    """Multiplicative attention gate ``2 * sigmoid(logits)`` in ``(0, 2)``, 1 at zero logits."""
    return GATE_SCALE * torch.sigmoid(logits)


def reduced_channels(in_channels: int, ratio: float, key: str = "ratio") -> int:
    """Hidden width ``max(1, int(in_channels * ratio))`` of a bottleneck transform.

    :raises ConfigError: if ``ratio`` is not in ``(0, 1]`` or ``in_channels`` is not positive.
    """
    require_positive_int("in_channels", in_channels)
    if not 0.0 < ratio <= 1.0:
        raise ConfigError(f"{key}: expected 0 < {key} <= 1, got {ratio}")
    return max(1, int(in_channels * ratio))


def zero_init_(module: nn.Module) -> None:
    """Set the weight and bias of a conv or norm layer to zero."""
    nn.init.zeros_(module.get_parameter("weight"))
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.get_parameter("bias"))
