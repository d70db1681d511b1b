"""Generalised IoU loss on torchvision.ops.generalized_box_iou_loss."""

from __future__ import annotations

from torch import Tensor
from torchvision.ops import generalized_box_iou_loss

from core.models.losses.reduction import WeightedLoss, zero_loss

#: Guards torchvision's IoU division for degenerate boxes.
EPS = 1e-7


class GIoULoss(WeightedLoss):
    """``loss_weight * (1 - GIoU(pred, target))`` per box pair (boxes decoded, xyxy).

    :param loss_weight: multiplies the loss.
    :param reduction: "none", "mean" or "sum".
    """

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
        loss = generalized_box_iou_loss(pred, target, reduction="none", eps=EPS)
        if weight is not None and weight.dim() == 2:
            weight = weight.mean(dim=-1)
        return self.weigh_and_reduce(loss, weight, avg_factor)
