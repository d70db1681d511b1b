"""Base of the losses computed per (predicted, target) pair of decoded boxes."""

from __future__ import annotations

import abc

from torch import Tensor

from core.models.losses.reduction import WeightedLoss


class BoxPairLoss(WeightedLoss, abc.ABC):
    """``loss_weight * elementwise(pred, target)`` per box pair (boxes decoded, xyxy), weighted
    and reduced; subclasses define :meth:`elementwise`. ``weight`` is ``(N,)`` or ``(N, 4)``
    (averaged over the 4 columns); no pairs give a zero loss.

    :param loss_weight: multiplies the loss.
    :param reduction: "none", "mean" or "sum".
    """

    zero_for_empty = True

    @abc.abstractmethod
    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """``(N,)`` unweighted loss of ``(N, 4)`` xyxy pairs."""

    def element_weight(self, weight: Tensor | None, loss: Tensor) -> Tensor | None:
        """``(N, 4)`` weights averaged over the 4 columns to ``(N,)``; ``(N,)`` as given."""
        return weight.mean(dim=-1) if weight is not None and weight.dim() == 2 else weight
