"""Complete IoU loss on torchvision.ops.complete_box_iou_loss."""

from __future__ import annotations

from torch import Tensor
from torchvision.ops import complete_box_iou_loss

from core.models.losses.reduction import WeightedLoss, zero_loss

#: Guards torchvision's IoU and diagonal divisions.
EPS = 1e-7


class CIoULoss(WeightedLoss):
    """``loss_weight * (1 - CIoU(pred, target))`` per box pair (boxes decoded, xyxy):
    ``1 - IoU + d^2 / c^2 + alpha * v`` with ``d`` the centre distance, ``c`` the diagonal of
    the enclosing box, ``v = 4 / pi^2 (atan(w_t / h_t) - atan(w_p / h_p))^2`` and
    ``alpha = v / (1 - IoU + v)`` (not differentiated).

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
        loss = complete_box_iou_loss(pred, target, reduction="none", eps=EPS)
        if weight is not None and weight.dim() == 2:
            weight = weight.mean(dim=-1)
        return self.weigh_and_reduce(loss, weight, avg_factor)
