"""L1 and smooth-L1 regression losses."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from core.models.losses.reduction import Reduction, WeightedLoss, expand_weight, zero_loss


class L1Loss(WeightedLoss):
    """``loss_weight * |pred - target|`` element-wise.

    :param loss_weight: multiplies the loss.
    :param reduction: "none", "mean" or "sum".
    """

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        return (pred - target).abs()

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
    ) -> Tensor:
        """:param pred: ``(N, D)`` predictions. :param target: ``(N, D)``.
        :param weight: ``(N,)`` or ``(N, D)``. :param avg_factor: normaliser for "mean".
        :returns: scalar (or ``(N, D)`` with reduction "none")."""
        if target.numel() == 0:
            return zero_loss(pred)
        loss = self.elementwise(pred, target)
        return self.weigh_and_reduce(loss, expand_weight(weight, loss), avg_factor)


class SmoothL1Loss(L1Loss):
    """Huber-style L1: quadratic below ``beta``, linear above.

    :param beta: transition point.
    :param loss_weight: multiplies the loss.
    :param reduction: "none", "mean" or "sum".
    """

    def __init__(
        self, beta: float = 1.0, loss_weight: float = 1.0, reduction: Reduction = "mean"
    ) -> None:
        super().__init__(loss_weight, reduction)
        self.beta = beta

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(pred, target, beta=self.beta, reduction="none")
