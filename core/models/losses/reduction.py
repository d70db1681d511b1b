"""Element-wise weighting and reduction shared by all losses."""

from __future__ import annotations

from typing import ClassVar, Literal

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
    """Base of the losses: holds ``loss_weight`` and ``reduction`` and owns ``forward``.

    A loss writes :meth:`elementwise`, its unweighted loss per element; where it has a
    faster way to the weighted sum it also writes :meth:`weighted_sum`, which ``forward``
    consults first. :meth:`element_weight` shapes ``weight`` to the element-wise loss.

    :param loss_weight: multiplies the loss.
    :param reduction: "none", "mean" or "sum".
    """

    #: An empty target gives :func:`zero_loss` (a 0-d zero kept in the graph) whatever the
    #: reduction: the box losses of a batch without positives.
    zero_for_empty: ClassVar[bool] = False

    def __init__(self, loss_weight: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.reduction = reduction

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
    ) -> Tensor:
        """``loss_weight`` times the weighted and reduced loss of ``pred`` against ``target``.

        :param pred: ``(N, ...)`` predictions of ``N`` rows (``(N, C)`` logits, ``(N, 4)``
            boxes, ...).
        :param target: the ``N`` rows' targets, in the form :meth:`elementwise` takes.
        :param weight: ``(N,)`` row weights or weights broadcastable to the element-wise
            loss, as :meth:`element_weight` shapes them; None weighs every element 1.
        :param avg_factor: with "mean", divide the sum by this instead of the element count
            (e.g. the number of positives).
        :returns: a scalar, or the weighted element-wise loss with reduction "none".
        :raises ValueError: for ``avg_factor`` combined with "sum".
        """
        if self.zero_for_empty and target.numel() == 0:
            return zero_loss(pred)
        if self.reduction != "none":
            total = self.weighted_sum(pred, target, weight)
            if total is not None:
                return self.weigh_total(total, pred.numel(), avg_factor)
        loss = self.elementwise(pred, target)
        return self.weigh_and_reduce(loss, self.element_weight(weight, loss), avg_factor)

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """The unweighted loss per element (e.g. ``(N, C)`` per logit or ``(N,)`` per box
        pair), before ``weight``, reduction and ``loss_weight``."""
        raise NotImplementedError(f"{type(self).__name__} defines neither elementwise nor forward")

    def weighted_sum(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor | None:
        """The weighted loss summed over the ``pred.numel()`` elements, where the loss has a
        faster way to it than :meth:`elementwise`; None (the default) takes the element-wise
        path. Consulted only when ``reduction`` is not "none"."""
        return None

    def element_weight(self, weight: Tensor | None, loss: Tensor) -> Tensor | None:
        """``weight`` as it multiplies the element-wise ``loss``: :func:`expand_weight`
        (``(N,)`` row weights over an ``(N, D)`` loss; other shapes as given)."""
        return expand_weight(weight, loss)

    def weigh_and_reduce(
        self, loss: Tensor, weight: Tensor | None, avg_factor: float | Tensor | None
    ) -> Tensor:
        """``loss_weight`` times :func:`weight_reduce_loss` of the element-wise ``loss``."""
        return self.loss_weight * weight_reduce_loss(loss, weight, self.reduction, avg_factor)

    def weigh_total(self, total: Tensor, count: int, avg_factor: float | Tensor | None) -> Tensor:
        """``loss_weight`` times :func:`reduce_total` of a loss already summed over ``count``
        elements (``reduction`` must not be "none")."""
        return self.loss_weight * reduce_total(total, count, self.reduction, avg_factor)
