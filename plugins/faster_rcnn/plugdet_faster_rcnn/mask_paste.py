"""Masks predicted on a RoI's fixed grid pasted into the image: each ``M x M`` mask is padded
by one pixel, its box widened by ``(M + 2) / M`` to match, the box cut to whole pixels and
the mask resized onto it bilinearly (the convention of torchvision's Mask R-CNN and of
Detectron, so converted weights predict the same masks)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: Zero pixels added around a mask before pasting: the resize then fades to zero at the box
#: border instead of stretching the mask's edge values.
PASTE_PADDING = 1
_FLIP_DIMS = {"horizontal": (-1,), "vertical": (-2,), "diagonal": (-2, -1)}


def expanded_boxes(boxes: Tensor, scale: float) -> Tensor:
    """``(N, 4)`` xyxy boxes scaled by ``scale`` about their centres."""
    centres = (boxes[:, :2] + boxes[:, 2:]) * 0.5
    half = (boxes[:, 2:] - boxes[:, :2]) * 0.5 * scale
    return torch.cat([centres - half, centres + half], dim=1)


def flip_masks(masks: Tensor, direction: str | None) -> Tensor:
    """``(N, M, M)`` masks mirrored like an image flipped in ``direction`` (``None``: as
    they are): a mask predicted on a flipped image, for its box in the unflipped one."""
    if direction is None:
        return masks
    if direction not in _FLIP_DIMS:
        raise ValueError(f"unknown flip direction {direction!r}")
    return masks.flip(_FLIP_DIMS[direction])


def paste_masks(masks: Tensor, boxes: Tensor, shape: tuple[int, int],
                threshold: float | None = None) -> Tensor:
    """Paste RoI masks into an image.

    :param masks: ``(N, M, M)`` float mask probabilities on each box's grid.
    :param boxes: ``(N, 4)`` xyxy boxes in the image's pixels.
    :param shape: ``(H, W)`` of the image.
    :param threshold: with a value, each pasted mask is binarised (``>= threshold``) before
        the next is pasted (no ``(N, H, W)`` float image is held).
    :returns: ``(N, H, W)``: the probabilities (zero outside the box), or bool with
        ``threshold``; on ``masks``' device.
    """
    height, width = shape
    size = masks.shape[-1]
    padded = F.pad(masks, (PASTE_PADDING,) * 4)
    corners = expanded_boxes(boxes.float(), (size + 2 * PASTE_PADDING) / size).long()
    dtype = masks.dtype if threshold is None else torch.bool
    out = torch.zeros((len(masks), height, width), dtype=dtype, device=masks.device)
    for index, (x0, y0, x1, y1) in enumerate(corners.tolist()):
        box_w, box_h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
        resized = F.interpolate(padded[index][None, None], size=(box_h, box_w),
                                mode="bilinear", align_corners=False)[0, 0]
        left, right = max(x0, 0), min(x1 + 1, width)
        top, bottom = max(y0, 0), min(y1 + 1, height)
        if left >= right or top >= bottom:
            continue
        window = resized[top - y0:bottom - y0, left - x0:right - x0]
        out[index, top:bottom, left:right] = window if threshold is None else window >= threshold
    return out
