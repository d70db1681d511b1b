"""What the box coders share: clipping decoded boxes to the image, the stride check."""

from __future__ import annotations

import torch
from torch import Tensor

from core.errors import ConfigError


def clip_to_image(boxes: Tensor, max_shape: Tensor) -> Tensor:
    """``(..., 4)`` xyxy boxes clipped to ``[0, w] x [0, h]``.

    :param max_shape: ``(..., 2)`` image ``(h, w)`` broadcastable to the boxes' leading
        dimensions.
    """
    max_shape = max_shape.to(boxes.dtype)
    limits = torch.stack([max_shape[..., 1], max_shape[..., 0]] * 2, dim=-1)
    return torch.minimum(boxes.clamp(min=0), limits)


def require_strides(strides: Tensor | None, coder: str) -> Tensor:
    """``strides`` for a coder that works in units of the stride; a ``ConfigError`` naming
    ``coder`` when the head passes none."""
    if strides is None:
        raise ConfigError(f"{coder} works in units of the stride: the head must pass strides "
                          "(use priors from a generator that gives them)")
    return strides
