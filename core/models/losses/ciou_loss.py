"""Complete IoU loss on torchvision.ops.complete_box_iou_loss."""

from __future__ import annotations

from torchvision.ops import complete_box_iou_loss

from core.models.losses.giou_loss import GIoULoss


class CIoULoss(GIoULoss):
    """``loss_weight * (1 - CIoU(pred, target))`` per box pair (boxes decoded, xyxy): the IoU
    minus the normalised centre distance and an aspect-ratio term (Zheng et al., 2020).
    Weights and reduction as :class:`GIoULoss`.

    :param loss_weight: multiplies the loss.
    :param reduction: "none", "mean" or "sum".
    """

    element_loss = staticmethod(complete_box_iou_loss)
