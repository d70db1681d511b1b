"""Sigmoid focal loss (Lin et al., 2017) on torchvision.ops.sigmoid_focal_loss."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from core.models.losses.reduction import Reduction, WeightedLoss
from core.models.losses.sparse_focal import sparse_sigmoid_focal_loss_sum
from core.models.losses.targets import ClsTargets, one_hot_without_background


class FocalLoss(WeightedLoss):
    """``loss_weight * FL(p_t) = -alpha_t (1 - p_t) ** gamma log(p_t)`` per class logit;
    ``weight`` is ``(N,)`` per row or ``(N, C)`` per element.

    :param gamma: focusing parameter.
    :param alpha: weight of the positive class (negative ``alpha`` disables weighting).
    :param loss_weight: multiplies the loss.
    :param reduction: "none", "mean" or "sum".
    """

    #: Takes class labels (``(N, C)`` 0/1 targets work too; soft targets are not its loss).
    cls_targets: ClassVar[ClsTargets] = "labels"

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float = 0.25,
        loss_weight: float = 1.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(loss_weight, reduction)
        self.gamma = gamma
        self.alpha = alpha

    def weighted_sum(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor | None:
        """Integer labels with no weights or ``(N,)`` row weights (the dense heads' case) take
        :func:`sparse_sigmoid_focal_loss_sum`, which gives the same value without building a
        one-hot target and in a third of the time; None for the other cases."""
        if target.dim() == 1 and (weight is None or weight.dim() == 1):
            return sparse_sigmoid_focal_loss_sum(pred, target, self.alpha, self.gamma, weight)
        return None

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """``(N, C)`` ``torchvision.ops.sigmoid_focal_loss`` of ``(N, C)`` logits against
        ``(N,)`` int64 labels in ``[0, C]`` (``C`` = background) or ``(N, C)`` float binary
        targets."""
        if target.dim() == 1:
            target = one_hot_without_background(target, pred)
        loss: Tensor = sigmoid_focal_loss(
            pred, target.to(pred.dtype), alpha=self.alpha, gamma=self.gamma, reduction="none"
        )
        return loss
