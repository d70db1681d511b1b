"""Quality focal loss (Li et al., 2020, Generalized Focal Loss): a sigmoid focal loss on soft
(quality) class targets."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from core.models.losses.reduction import Reduction, WeightedLoss
from core.models.losses.targets import ClsTargets


class QualityFocalLoss(WeightedLoss):
    """``loss_weight * BCEWithLogits(x, t) * |t - sigmoid(x)| ** beta`` per class logit ``x``
    and soft target ``t`` in ``[0, 1]`` (the IoU of a positive at its class, 0 elsewhere).
    The modulating factor is not detached (as in the reference implementations). ``weight``
    is ``(N,)`` per row or ``(N, C)`` per element; ``avg_factor`` e.g. the sum of the
    positives' targets.

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

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """``(N, C)`` loss of ``(N, C)`` logits against ``(N, C)`` soft targets."""
        target = target.to(pred.dtype)
        scale = (target - pred.sigmoid()).abs().pow(self.beta)
        return F.binary_cross_entropy_with_logits(pred, target, reduction="none") * scale
