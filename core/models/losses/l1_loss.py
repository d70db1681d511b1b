"""L1 and smooth-L1 regression losses."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from core.models.losses.reduction import Reduction, WeightedLoss


class L1Loss(WeightedLoss):
    """``loss_weight * |pred - target|`` element-wise; ``weight`` is ``(N,)`` per row or
    ``(N, D)`` per element, and no targets give a zero loss.

    :param loss_weight: multiplies the loss.
    :param reduction: "none", "mean" or "sum".
    """

    zero_for_empty = True

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """``(N, D)`` loss of ``(N, D)`` predictions and targets."""
        return (pred - target).abs()


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
