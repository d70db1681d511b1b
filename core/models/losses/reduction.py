"""Element-wise weighting and reduction shared by all losses."""

from __future__ import annotations

from typing import Literal

from torch import Tensor

Reduction = Literal["none", "mean", "sum"]
#: Guards the division by ``avg_factor``.
EPS = 1e-12


def weight_reduce_loss(
    loss: Tensor,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Apply element weights, then reduce.

    :param loss: element-wise loss of any shape.
    :param weight: broadcastable to ``loss`` (e.g. ``(N,)`` -> pass ``(N, 1)``), or None.
    :param reduction: "none", "mean" or "sum".
    :param avg_factor: with "mean", divide the sum by this instead of the element count
        (e.g. the number of positives).
    :raises ValueError: for ``avg_factor`` combined with "sum".
    """
    if weight is not None:
        loss = loss * weight
    if reduction == "none":
        return loss
    if avg_factor is None:
        return loss.mean() if reduction == "mean" else loss.sum()
    if reduction == "sum":
        raise ValueError('avg_factor cannot be used with reduction="sum"')
    return loss.sum() / (avg_factor + EPS)


def expand_weight(weight: Tensor | None, like: Tensor) -> Tensor | None:
    """Broadcast a per-row ``(N,)`` weight to ``like`` ``(N, D)``; other shapes pass through."""
    if weight is not None and weight.dim() == 1 and like.dim() == 2:
        return weight[:, None].expand_as(like)
    return weight
