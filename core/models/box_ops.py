"""Batched box overlap helpers not provided by torchvision.ops."""

from __future__ import annotations

import torch
from torch import Tensor


def box_iof(boxes: Tensor, regions: Tensor, valid: Tensor) -> Tensor:
    """Largest intersection-over-foreground of each box with the regions of each image.

    :param boxes: ``(N, 4)`` xyxy boxes shared by all images (e.g. anchors).
    :param regions: ``(B, K, 4)`` xyxy regions per image (e.g. ignore boxes).
    :param valid: ``(B, K)`` bool, False for padding regions.
    :returns: ``(B, N)`` float: ``max_k area(box ∩ region_k) / area(box)`` (0 without regions).
    """
    if regions.shape[1] == 0:
        return boxes.new_zeros((regions.shape[0], boxes.shape[0]))
    top_left = torch.maximum(boxes[None, None, :, :2], regions[:, :, None, :2])
    bottom_right = torch.minimum(boxes[None, None, :, 2:], regions[:, :, None, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]  # (B, K, N)
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(
        min=torch.finfo(boxes.dtype).eps
    )
    iof = (inter / area).masked_fill(~valid[:, :, None], 0.0)
    return iof.amax(dim=1)
