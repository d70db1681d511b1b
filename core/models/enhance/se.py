"""Squeeze-and-Excitation (Hu et al., 2018): channel attention from global average pooling."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from core.models.enhance.common import identity_gate, reduced_channels, zero_init_


class SELayer(nn.Module):
    """``x (B, C, H, W) -> x * gate(W2 relu(W1 avgpool(x))) (B, C, H, W)``.

    The gate is ``2 * sigmoid`` and ``W2`` starts at zero, so the layer starts as the identity.

    :param in_channels: ``C``, set by the network the layer is inserted into.
    :param ratio: hidden width of the excitation MLP as a fraction of ``C``.
    """

    def __init__(self, in_channels: int, ratio: float = 1 / 16) -> None:
        super().__init__()
        hidden = reduced_channels(in_channels, ratio)
        self.squeeze = nn.Conv2d(in_channels, hidden, 1)
        self.excite = nn.Conv2d(hidden, in_channels, 1)
        zero_init_(self.excite)

    def forward(self, x: Tensor) -> Tensor:
        """:param x: ``(B, C, H, W)``. :returns: ``(B, C, H, W)``, each channel rescaled."""
        context = F.adaptive_avg_pool2d(x, 1)
        return x * identity_gate(self.excite(F.relu(self.squeeze(context))))
