"""IoU loss of aligned box pairs: ``1 - IoU`` or YOLOX's ``1 - IoU ** 2``."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from core.errors import ConfigError
from core.models.losses.reduction import Reduction, WeightedLoss, zero_loss

#: Guards the division for degenerate boxes.
EPS = 1e-7
IoUMode = Literal["linear", "square", "log"]
MODES = ("linear", "square", "log")


def aligned_iou(boxes1: Tensor, boxes2: Tensor, eps: float = EPS) -> Tensor:
    """``(N,)`` IoU of the pairs ``boxes1[i]``, ``boxes2[i]`` (``(N, 4)`` xyxy)."""
    top_left = torch.maximum(boxes1[:, :2], boxes2[:, :2])
    bottom_right = torch.minimum(boxes1[:, 2:], boxes2[:, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    area1 = (boxes1[:, 2:] - boxes1[:, :2]).clamp(min=0).prod(dim=-1)
    area2 = (boxes2[:, 2:] - boxes2[:, :2]).clamp(min=0).prod(dim=-1)
    return inter / (area1 + area2 - inter + eps)


class IoULoss(WeightedLoss):
    """``loss_weight * f(IoU(pred, target))`` per box pair (decoded xyxy boxes), with ``f``
    ``1 - IoU`` ("linear"), ``1 - IoU ** 2`` ("square", YOLOX) or ``-log(IoU)`` ("log").

    :param mode: the function of the IoU.
    :param eps: guards the division (and the log).
    :param loss_weight: multiplies the loss.
    :param reduction: "none", "mean" or "sum".
    """

    def __init__(self, mode: IoUMode = "linear", eps: float = EPS, loss_weight: float = 1.0,
                 reduction: Reduction = "mean") -> None:
        super().__init__(loss_weight, reduction)
        if mode not in MODES:
            raise ConfigError(f"mode: expected one of {list(MODES)}, got {mode!r}")
        self.mode = mode
        self.eps = eps

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None) -> Tensor:
        """:param pred: ``(N, 4)`` xyxy. :param target: ``(N, 4)`` xyxy.
        :param weight: ``(N,)``. :param avg_factor: normaliser for "mean".
        :returns: scalar (or ``(N,)``)."""
        if target.numel() == 0:
            return zero_loss(pred)
        iou = aligned_iou(pred, target, self.eps)
        if self.mode == "linear":
            loss = 1 - iou
        elif self.mode == "square":
            loss = 1 - iou ** 2
        else:
            loss = -iou.clamp(min=self.eps).log()
        return self.weigh_and_reduce(loss, weight, avg_factor)
