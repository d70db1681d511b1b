"""Element-wise weighting and reduction shared by all losses."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

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
    return reduce_total(loss.sum(), loss.numel(), reduction, avg_factor)


def reduce_total(
    total: Tensor,
    count: int,
    reduction: Reduction,
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Reduce an already summed loss: ``total``, ``total / count`` ("mean") or
    ``total / avg_factor`` ("mean" with ``avg_factor``).

    :param total: scalar sum of ``count`` element losses.
    :param reduction: "mean" or "sum" (the callers keep "none" on the element-wise path).
    :raises ValueError: for ``avg_factor`` combined with "sum".
    """
    if avg_factor is None:
        return total / count if reduction == "mean" else total
    if reduction == "sum":
        raise ValueError('avg_factor cannot be used with reduction="sum"')
    return total / (avg_factor + EPS)


def zero_loss(pred: Tensor) -> Tensor:
    """A zero loss that keeps ``pred`` in the graph (no positives: gradients are zero, not
    missing)."""
    return pred.sum() * 0.0


def expand_weight(weight: Tensor | None, like: Tensor) -> Tensor | None:
    """Broadcast a per-row ``(N,)`` weight to ``like`` ``(N, D)``; other shapes pass through."""
    if weight is not None and weight.dim() == 1 and like.dim() == 2:
        return weight[:, None].expand_as(like)
    return weight


class WeightedLoss(nn.Module):
    """Base of the losses: holds ``loss_weight`` and ``reduction`` and applies both.

    :param loss_weight: multiplies the loss.
    :param reduction: "none", "mean" or "sum".
    """

    def __init__(self, loss_weight: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.reduction = reduction

    def weigh_and_reduce(
        self, loss: Tensor, weight: Tensor | None, avg_factor: float | Tensor | None
    ) -> Tensor:
        """``loss_weight`` times :func:`weight_reduce_loss` of the element-wise ``loss``."""
        return self.loss_weight * weight_reduce_loss(loss, weight, self.reduction, avg_factor)

    def weigh_total(self, total: Tensor, count: int, avg_factor: float | Tensor | None) -> Tensor:
        """``loss_weight`` times :func:`reduce_total` of a loss already summed over ``count``
        elements (``reduction`` must not be "none")."""
        return self.loss_weight * reduce_total(total, count, self.reduction, avg_factor)
