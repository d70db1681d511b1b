"""Generalised IoU loss on torchvision.ops.generalized_box_iou_loss."""

from __future__ import annotations

from torch import Tensor
from torchvision.ops import generalized_box_iou_loss

from core.models.losses.box_pair_loss import BoxPairLoss

#: Guards torchvision's IoU division for degenerate boxes.
EPS = 1e-7


class GIoULoss(BoxPairLoss):
    """``loss_weight * (1 - GIoU(pred, target))`` per box pair (boxes decoded, xyxy).

    :param loss_weight: multiplies the loss.
    :param reduction: "none", "mean" or "sum".
    """

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """``(N,)`` ``1 - GIoU`` of ``(N, 4)`` xyxy pairs."""
        loss: Tensor = generalized_box_iou_loss(pred, target, reduction="none", eps=EPS)
        return loss
