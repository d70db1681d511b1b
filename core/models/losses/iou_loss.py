"""IoU loss of aligned box pairs: ``1 - IoU`` or YOLOX's ``1 - IoU ** 2``."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from core.errors import ConfigError
from core.models.losses.reduction import Reduction, WeightedLoss

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
    ``1 - IoU`` ("linear"), ``1 - IoU ** 2`` ("square", YOLOX) or ``-log(IoU)`` ("log");
    ``weight`` is ``(N,)``, and no pairs give a zero loss.

    :param mode: the function of the IoU.
    :param eps: guards the division (and the log).
    :param loss_weight: multiplies the loss.
    :param reduction: "none", "mean" or "sum".
    """

    zero_for_empty = True

    def __init__(self, mode: IoUMode = "linear", eps: float = EPS, loss_weight: float = 1.0,
                 reduction: Reduction = "mean") -> None:
        super().__init__(loss_weight, reduction)
        if mode not in MODES:
            raise ConfigError(f"mode: expected one of {list(MODES)}, got {mode!r}")
        self.mode = mode
        self.eps = eps

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """``(N,)`` loss of ``(N, 4)`` xyxy pairs."""
        iou = aligned_iou(pred, target, self.eps)
        if self.mode == "linear":
            return 1 - iou
        if self.mode == "square":
            return 1 - iou ** 2
        return -iou.clamp(min=self.eps).log()
