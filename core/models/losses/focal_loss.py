"""Sigmoid focal loss (Lin et al., 2017) on torchvision.ops.sigmoid_focal_loss."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from core.models.losses.reduction import Reduction, WeightedLoss, expand_weight
from core.models.losses.sparse_focal import sparse_sigmoid_focal_loss_sum
from core.models.losses.targets import ClsTargets, one_hot_without_background


class FocalLoss(WeightedLoss):
    """``loss_weight * FL(p_t) = -alpha_t (1 - p_t) ** gamma log(p_t)`` per class logit.

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

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
    ) -> Tensor:
        """:param pred: ``(N, C)`` logits.
        :param target: ``(N,)`` int64 labels in ``[0, C]`` (``C`` = background) or ``(N, C)``
            float binary targets.
        :param weight: ``(N,)`` or ``(N, C)`` element weights.
        :param avg_factor: normaliser for "mean" (e.g. number of positives).
        :returns: scalar (or ``(N, C)`` with reduction "none").

        Integer labels with no weights or ``(N,)`` row weights and a reducing ``reduction``
        (the dense heads' case) take :func:`sparse_sigmoid_focal_loss_sum`, which gives the
        same value without building a one-hot target and in a third of the time; the other
        cases use ``torchvision.ops.sigmoid_focal_loss``."""
        per_row = weight is None or weight.dim() == 1
        if target.dim() == 1 and per_row and self.reduction != "none":
            total = sparse_sigmoid_focal_loss_sum(pred, target, self.alpha, self.gamma, weight)
            return self.weigh_total(total, pred.numel(), avg_factor)
        if target.dim() == 1:
            target = one_hot_without_background(target, pred)
        loss = sigmoid_focal_loss(
            pred, target.to(pred.dtype), alpha=self.alpha, gamma=self.gamma, reduction="none"
        )
        return self.weigh_and_reduce(loss, expand_weight(weight, loss), avg_factor)
