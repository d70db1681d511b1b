"""Softmax or sigmoid (binary) cross-entropy."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from core.models.losses.reduction import Reduction, WeightedLoss
from core.models.losses.targets import ClsTargets, one_hot_without_background


class CrossEntropyLoss(WeightedLoss):
    """Cross-entropy over class logits.

    With ``use_sigmoid`` each of the C classes is an independent binary problem and label ``C``
    means background (all-zero target), or the target is an ``(N, C)`` float matrix of soft
    targets in ``[0, 1]`` (e.g. IoU or alignment scores); otherwise a softmax over the C
    logits (include a background logit in C yourself). ``weight`` is ``(N,)`` per sample.

    :param use_sigmoid: binary cross-entropy per class instead of softmax.
    :param class_weight: optional per-class weights (length C).
    :param loss_weight: multiplies the loss.
    :param reduction: "none", "mean" or "sum".
    """

    def __init__(
        self,
        use_sigmoid: bool = False,
        class_weight: list[float] | None = None,
        loss_weight: float = 1.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(loss_weight, reduction)
        self.use_sigmoid = use_sigmoid
        self.class_weight = class_weight
        #: Labels or, with sigmoid, ``(N, C)`` soft targets too.
        self.cls_targets: ClsTargets = "labels_or_soft" if use_sigmoid else "labels"

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """``(N, C)`` binary (sigmoid) or ``(N,)`` softmax cross-entropy of ``(N, C)`` logits
        against ``(N,)`` int64 labels (``[0, C)`` for softmax, ``[0, C]`` with background
        ``C`` for sigmoid) or, with sigmoid, ``(N, C)`` float soft targets."""
        class_weight = None if self.class_weight is None else pred.new_tensor(self.class_weight)
        if not self.use_sigmoid:
            return F.cross_entropy(pred, target, weight=class_weight, reduction="none")
        soft = target.is_floating_point() and target.shape == pred.shape
        binary = target if soft else one_hot_without_background(target, pred)
        loss = F.binary_cross_entropy_with_logits(pred, binary, reduction="none")
        return loss if class_weight is None else loss * class_weight
