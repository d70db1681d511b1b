"""Non-local block (Wang et al., 2018), embedded Gaussian version, as a residual layer."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from core.models.enhance.common import reduced_channels


class NonLocal2d(nn.Module):
    """``x (B, C, H, W) -> x + BN(W_z y) (B, C, H, W)`` with
    ``y = softmax(theta(x)^T phi(x) * scale) g(x)`` over all ``N = H * W`` positions.

    ``theta``, ``phi`` and ``g`` are 1x1 convs to ``C * ratio`` channels; ``scale`` is
    ``(C * ratio) ** -0.5`` with ``use_scale`` and 1 otherwise. The final BatchNorm starts with
    zero weight and bias, so the block starts as the identity. Memory grows with ``N ** 2``:
    insert it on coarse levels (stride 16 or 32).

    :param in_channels: ``C``, set by the network the layer is inserted into.
    :param ratio: width of the embeddings as a fraction of ``C``.
    :param use_scale: divide the affinities by the square root of the embedding width.
    """

    def __init__(self, in_channels: int, ratio: float = 0.5, use_scale: bool = True) -> None:
        super().__init__()
        inter = reduced_channels(in_channels, ratio)
        self.use_scale = use_scale
        self.theta = nn.Conv2d(in_channels, inter, 1)
        self.phi = nn.Conv2d(in_channels, inter, 1)
        self.g = nn.Conv2d(in_channels, inter, 1)
        self.conv_out = nn.Conv2d(inter, in_channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(in_channels)
        nn.init.zeros_(self.norm.weight)
        nn.init.zeros_(self.norm.bias)

    def forward(self, x: Tensor) -> Tensor:
        """:param x: ``(B, C, H, W)``. :returns: ``(B, C, H, W)``."""
        batch, _, height, width = x.shape

        def tokens(conv: nn.Conv2d) -> Tensor:  # (B, C', H, W) -> (B, 1, N, C')
            features: Tensor = conv(x)
            return features.flatten(2).transpose(1, 2).unsqueeze(1)

        scale = None if self.use_scale else 1.0  # None: the default 1 / sqrt(C')
        y = F.scaled_dot_product_attention(
            tokens(self.theta), tokens(self.phi), tokens(self.g), scale=scale
        )
        y = y.squeeze(1).transpose(1, 2).reshape(batch, -1, height, width)
        out: Tensor = self.norm(self.conv_out(y))
        return x + out
