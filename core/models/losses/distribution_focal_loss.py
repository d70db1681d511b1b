"""Distribution focal loss (Li et al., Generalized Focal Loss, NeurIPS 2020)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from core.models.losses.reduction import WeightedLoss


class DistributionFocalLoss(WeightedLoss):
    """Cross-entropy of a discretised distance to its two neighbouring bins, weighted
    linearly: a target ``t`` between bins ``l = floor(t)`` and ``l + 1`` gives
    ``CE(pred, l) * (l + 1 - t) + CE(pred, l + 1) * (t - l)``.

    The targets must lie in ``[0, n_bins - 1)`` (heads clamp them, e.g. YOLOv8 to
    ``n_bins - 1 - 0.01``). ``weight`` is ``(N,)``, and no targets give a zero loss.

    :param loss_weight: multiplies the loss.
    :param reduction: "none", "mean" or "sum".
    """

    zero_for_empty = True

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """``(N,)`` loss of ``(N, n_bins)`` logits over the bins against ``(N,)`` float
        distances in bin units."""
        left = target.long()
        right_weight = target - left
        return (F.cross_entropy(pred, left, reduction="none") * (1 - right_weight)
                + F.cross_entropy(pred, left + 1, reduction="none") * right_weight)
