"""Complete IoU loss on torchvision.ops.complete_box_iou_loss."""

from __future__ import annotations

from torch import Tensor
from torchvision.ops import complete_box_iou_loss

from core.models.losses.box_pair_loss import BoxPairLoss

#: Guards torchvision's IoU and diagonal divisions.
EPS = 1e-7


class CIoULoss(BoxPairLoss):
    """``loss_weight * (1 - CIoU(pred, target))`` per box pair (boxes decoded, xyxy):
    ``1 - IoU + d^2 / c^2 + alpha * v`` with ``d`` the centre distance, ``c`` the diagonal of
    the enclosing box, ``v = 4 / pi^2 (atan(w_t / h_t) - atan(w_p / h_p))^2`` and
    ``alpha = v / (1 - IoU + v)`` (not differentiated).

    :param loss_weight: multiplies the loss.
    :param reduction: "none", "mean" or "sum".
    """

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """``(N,)`` ``1 - CIoU`` of ``(N, 4)`` xyxy pairs."""
        loss: Tensor = complete_box_iou_loss(pred, target, reduction="none", eps=EPS)
        return loss
