"""Class targets for per-class binary losses."""

from __future__ import annotations

from torch import Tensor


def one_hot_without_background(labels: Tensor, like: Tensor) -> Tensor:
    """``(N,)`` labels in ``[0, C]`` (``C`` = background) -> ``(N, C)`` 0/1 targets.

    :param labels: ``(N,)`` int64 labels.
    :param like: ``(N, C)`` tensor giving the shape, dtype and device of the result.
    """
    target = like.new_zeros(like.shape)
    foreground = labels < like.shape[1]
    target[foreground, labels[foreground]] = 1.0
    return target
