"""The losses of RT-DETR's set prediction: varifocal classification with IoU-aware targets,
L1 and GIoU on the matched pairs, each divided by the number of gt boxes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import box_convert, generalized_box_iou_loss


def varifocal_loss(logits: Tensor, one_hot: Tensor, quality: Tensor, num_boxes: float,
                   alpha: float = 0.75, gamma: float = 2.0) -> Tensor:
    """Varifocal loss with IoU-aware targets, as RT-DETR normalises it.

    Per element: target ``t = quality * one_hot``, weight
    ``alpha * sigmoid(logit)^gamma * (1 - one_hot) + t`` (the probability detached), loss
    ``weight * BCE-with-logits(logit, t)``; then the mean over queries, the sum over images
    and classes, times ``Q``, divided by ``num_boxes``.

    :param logits: ``(B, Q, C)`` raw class logits.
    :param one_hot: ``(B, Q, C)`` 1 at the class of each matched query's gt box, else 0.
    :param quality: ``(B, Q)`` IoU of each matched query with its gt box, 0 elsewhere.
    :param num_boxes: the normaliser (number of gt boxes, >= 1).
    :returns: 0-d loss; 0, still connected to ``logits``, when there are no queries.
    """
    if logits.shape[1] == 0:
        return logits.sum() * 0
    target = quality.unsqueeze(-1) * one_hot
    weight = alpha * logits.detach().sigmoid().pow(gamma) * (1 - one_hot) + target
    loss = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="none")
    return loss.mean(1).sum() * logits.shape[1] / num_boxes


def matched_iou(boxes: Tensor, gt_boxes: Tensor) -> Tensor:
    """``(P,)`` detached IoU of each pair of ``(P, 4)`` ``cx, cy, w, h`` boxes (pair ``i`` is
    ``boxes[i]``, ``gt_boxes[i]``; no ``P x P`` matrix)."""
    with torch.no_grad():
        first = box_convert(boxes, "cxcywh", "xyxy")
        second = box_convert(gt_boxes, "cxcywh", "xyxy")
        size = (torch.min(first[:, 2:], second[:, 2:])
                - torch.max(first[:, :2], second[:, :2])).clamp(min=0)
        inter = size[:, 0] * size[:, 1]
        union = (first[:, 2] - first[:, 0]) * (first[:, 3] - first[:, 1]) \
            + (second[:, 2] - second[:, 0]) * (second[:, 3] - second[:, 1]) - inter
        iou: Tensor = inter / union
        return iou


def l1_box_loss(boxes: Tensor, gt_boxes: Tensor, num_boxes: float) -> Tensor:
    """Sum of the L1 distances of ``(P, 4)`` normalised ``cx, cy, w, h`` pairs over
    ``num_boxes``; 0-d."""
    return F.l1_loss(boxes, gt_boxes, reduction="none").sum() / num_boxes


def giou_box_loss(boxes: Tensor, gt_boxes: Tensor, num_boxes: float) -> Tensor:
    """Sum of ``1 - GIoU`` of ``(P, 4)`` ``cx, cy, w, h`` pairs over ``num_boxes``; 0-d.

    Pair by pair (no ``P x P`` matrix) and without torchvision's ``eps``, as the GIoU
    matrix's diagonal.
    """
    loss: Tensor = generalized_box_iou_loss(box_convert(boxes, "cxcywh", "xyxy"),
                                            box_convert(gt_boxes, "cxcywh", "xyxy"),
                                            reduction="sum", eps=0.0)
    return loss / num_boxes
