"""Quality focal loss (Li et al., 2020, Generalized Focal Loss): a sigmoid focal loss on soft
(quality) class targets."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from core.models.losses.reduction import Reduction, WeightedLoss, expand_weight
from core.models.losses.targets import ClsTargets


class QualityFocalLoss(WeightedLoss):
    """``loss_weight * BCEWithLogits(x, t) * |t - sigmoid(x)| ** beta`` per class logit ``x``
    and soft target ``t`` in ``[0, 1]`` (the IoU of a positive at its class, 0 elsewhere).
    The modulating factor is not detached (as in the reference implementations).

    :param beta: exponent of the modulating factor.
    :param loss_weight: multiplies the loss.
    :param reduction: "none", "mean" or "sum".
    """

    #: Takes ``(N, C)`` soft targets (a dense head gives ``one_hot * quality``).
    cls_targets: ClassVar[ClsTargets] = "soft"

    def __init__(self, beta: float = 2.0, loss_weight: float = 1.0,
                 reduction: Reduction = "mean") -> None:
        super().__init__(loss_weight, reduction)
        self.beta = beta

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
    ) -> Tensor:
        """:param pred: ``(N, C)`` logits. :param target: ``(N, C)`` soft targets.
        :param weight: ``(N,)`` row weights or ``(N, C)`` element weights.
        :param avg_factor: normaliser for "mean" (e.g. the sum of the positives' targets).
        :returns: scalar (or ``(N, C)`` with reduction "none")."""
        target = target.to(pred.dtype)
        scale = (target - pred.sigmoid()).abs().pow(self.beta)
        loss = F.binary_cross_entropy_with_logits(pred, target, reduction="none") * scale
        return self.weigh_and_reduce(loss, expand_weight(weight, loss), avg_factor)
