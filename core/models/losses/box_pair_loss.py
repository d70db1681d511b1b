"""Base of the losses computed per (predicted, target) pair of decoded boxes."""

from __future__ import annotations

import abc

from torch import Tensor

from core.models.losses.reduction import WeightedLoss, zero_loss


class BoxPairLoss(WeightedLoss, abc.ABC):
    """``loss_weight * pair_loss(pred, target)`` per box pair (boxes decoded, xyxy), weighted
    and reduced; subclasses define :meth:`pair_loss`.

    :param loss_weight: multiplies the loss.
    :param reduction: "none", "mean" or "sum".
    """

    @abc.abstractmethod
    def pair_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """``(N,)`` unweighted loss of ``(N, 4)`` xyxy pairs."""

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
    ) -> Tensor:
        """:param pred: ``(N, 4)`` xyxy. :param target: ``(N, 4)`` xyxy.
        :param weight: ``(N,)`` or ``(N, 4)`` (averaged over the 4 columns).
        :param avg_factor: normaliser for "mean". :returns: scalar (or ``(N,)``)."""
        if target.numel() == 0:
            return zero_loss(pred)
        loss = self.pair_loss(pred, target)
        if weight is not None and weight.dim() == 2:
            weight = weight.mean(dim=-1)
        return self.weigh_and_reduce(loss, weight, avg_factor)
