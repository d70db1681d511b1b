"""Batched box overlap helpers not provided by torchvision.ops."""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_iou, complete_box_iou_loss


def box_iof(boxes: Tensor, regions: Tensor, valid: Tensor) -> Tensor:
    """Largest intersection-over-foreground of each box with the regions of each image.

    :param boxes: ``(N, 4)`` xyxy boxes shared by all images (e.g. anchors), or ``(B, N, 4)``
        per image (e.g. proposals).
    :param regions: ``(B, K, 4)`` xyxy regions per image (e.g. ignore boxes).
    :param valid: ``(B, K)`` bool, False for padding regions.
    :returns: ``(B, N)`` float: ``max_k area(box ∩ region_k) / area(box)`` (0 without regions).
    """
    if regions.shape[1] == 0:
        return boxes.new_zeros((regions.shape[0], boxes.shape[-2]))
    per_image = boxes if boxes.ndim == 3 else boxes[None]  # (B or 1, N, 4)
    top_left = torch.maximum(per_image[:, None, :, :2], regions[:, :, None, :2])
    bottom_right = torch.minimum(per_image[:, None, :, 2:], regions[:, :, None, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]  # (B, K, N)
    area = ((per_image[..., 2] - per_image[..., 0]) * (per_image[..., 3] - per_image[..., 1]))
    area = area.clamp(min=torch.finfo(boxes.dtype).eps)[:, None, :]
    iof = (inter / area).masked_fill(~valid[:, :, None], 0.0)
    return iof.amax(dim=1)


def gt_prior_iou(gt_boxes: Tensor, prior_boxes: Tensor) -> Tensor:
    """IoU of every padded gt box with every prior box, per image.

    :param gt_boxes: ``(B, M, 4)`` xyxy.
    :param prior_boxes: ``(N, 4)`` shared by all images, or ``(B, N, 4)`` per image.
    :returns: ``(B, M, N)`` IoU (torchvision's ``box_iou``).
    """
    num_images, max_gts, _ = gt_boxes.shape
    if prior_boxes.ndim == 2:
        iou = box_iou(gt_boxes.reshape(-1, 4), prior_boxes)
        return iou.view(num_images, max_gts, prior_boxes.shape[0])
    return torch.stack([box_iou(g, p) for g, p in zip(gt_boxes, prior_boxes, strict=True)])


def aligned_ciou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Complete IoU of matching rows: IoU minus the squared centre distance over the squared
    diagonal of the enclosing box minus the aspect-ratio term ``alpha * v`` (torchvision's
    ``complete_box_iou_loss`` is ``1 - CIoU``).

    :param boxes1: ``(K, 4)`` xyxy with positive widths and heights.
    :param boxes2: ``(K, 4)`` xyxy with positive widths and heights.
    :returns: ``(K,)`` CIoU, at most 1.
    """
    return 1.0 - complete_box_iou_loss(boxes1, boxes2, reduction="none", eps=eps)
