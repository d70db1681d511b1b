"""YOLOv8-seg as one tensor function for ONNX export: fixed-size detections with their masks
at the input's size, traceable by ``torch.onnx.export`` (no branch on tensor values, sizes
that follow a dynamic input read as graph values).

The steps are the head's ``predict`` on a whole image (``img_shape = ori_shape`` = the
input, scale 1): per level the ``nms_pre`` best (prior, class) pairs, their boxes decoded and
clipped to the input, class-wise NMS, the ``max_per_img`` best; each kept detection's mask is
its coefficients . the prototypes read bilinearly at the input's pixel centres, cropped to its
box and thresholded at logit 0 (:func:`~plugdet_yolo.proto.paste_masks`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from core.api import export_dim

BOX_PARAMS = 4


def level_points(level_outputs: list[Tensor], strides: list[int], offset: float
                 ) -> tuple[Tensor, Tensor]:
    """The prior points of per-level ``(B, C, H_l, W_l)`` outputs, as a ``PointGenerator``
    with ``strides`` and ``offset`` gives them (row-major cells, levels in order).

    :returns: ``points (N, 2)`` ``(x, y)`` pixels and ``strides (N,)``."""
    points, point_strides = [], []
    for output, stride in zip(level_outputs, strides, strict=True):
        device = output.device
        xs = torch.arange(export_dim(output, 3), device=device, dtype=torch.float32)
        ys = torch.arange(export_dim(output, 2), device=device, dtype=torch.float32)
        xs, ys = (xs + offset) * stride, (ys + offset) * stride
        xx = (xs[None, :] + ys[:, None] * 0).reshape(-1)
        yy = (ys[:, None] + xs[None, :] * 0).reshape(-1)
        points.append(torch.stack([xx, yy], dim=1))
        point_strides.append(torch.full_like(xx, float(stride)))
    return torch.cat(points), torch.cat(point_strides)


def masks_at_input(logits: Tensor, boxes: Tensor, valid: Tensor, images: Tensor,
                   logit_shape: tuple[int, int]) -> Tensor:
    """``(B, K, H, W)`` bool masks at the input's pixels from prototype-resolution logits.

    :param logits: ``(B, K, h, w)`` mask logits spanning a network input of ``logit_shape``
        ``(H', W')`` pixels (the input, up to its padding to the largest stride).
    :param boxes: ``(B, K, 4)`` xyxy input pixels; a mask is kept inside its box.
    :param valid: ``(B, K)`` bool, False on unused rows (all-False masks).
    :param images: ``(B, 3, H, W)``, for the output size."""
    xs = torch.arange(export_dim(images, 3), device=images.device, dtype=torch.float32) + 0.5
    ys = torch.arange(export_dim(images, 2), device=images.device, dtype=torch.float32) + 0.5
    grid_x = xs * (2.0 / logit_shape[1]) - 1.0
    grid_y = ys * (2.0 / logit_shape[0]) - 1.0
    grid = torch.stack([grid_x[None, :] + grid_y[:, None] * 0,
                        grid_y[:, None] + grid_x[None, :] * 0], dim=-1)
    values = F.grid_sample(logits.flatten(0, 1)[None], grid[None], mode="bilinear",
                           padding_mode="border", align_corners=False)[0]
    values = values.reshape(logits.shape[0], logits.shape[1], values.shape[-2],
                            values.shape[-1])
    inside_x = (xs >= boxes[..., 0:1]) & (xs <= boxes[..., 2:3])  # (B, K, W)
    inside_y = (ys >= boxes[..., 1:2]) & (ys <= boxes[..., 3:4])  # (B, K, H)
    return ((values > 0) & inside_y[..., :, None] & inside_x[..., None, :]
            & valid[..., None, None])
