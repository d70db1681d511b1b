"""Dynamic soft-label assignment (RTMDet, Lyu et al. 2022), batched over images."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from core.contracts import AssignResult, GTBatch, Predictions, Priors
from core.errors import require_positive_int
from core.models.assigners.dynamic_k import (
    IOU_COST_EPS,
    all_negative,
    dynamic_inputs,
    dynamic_k_result,
    inside_boxes,
    pairwise_iou,
)

#: Probabilities are clamped to ``[eps, 1 - eps]`` before they are turned back into logits.
LOGIT_EPS = 1e-6


def soft_label_cost(logits: Tensor, labels: Tensor, iou: Tensor) -> Tensor:
    """``(B, M, N)`` ``BCEWithLogits(x, IoU) * |IoU - sigmoid(x)| ** 2`` where ``x`` is the
    prior's logit of the box's class.

    :param logits: ``(B, N, C)`` class logits. :param labels: ``(B, M)`` int64.
    :param iou: ``(B, M, N)`` IoU of each box with each predicted box (the soft label).
    """
    index = labels[:, None, :].expand(-1, logits.shape[1], -1)  # (B, N, M)
    own = logits.gather(2, index).transpose(1, 2)  # (B, M, N)
    scale = (iou - own.sigmoid()).abs().pow(2)
    return F.binary_cross_entropy_with_logits(own, iou, reduction="none") * scale


class DynamicSoftLabelAssigner:
    """Candidates are priors whose centre lies strictly inside any gt box. The cost of a
    (box, prior) pair is

    ``cls_weight * BCEWithLogits(x, IoU) * |IoU - sigmoid(x)| ** 2
    + iou_weight * -log(IoU + 1e-7) + 10 ** (distance / stride - soft_center_radius)``

    with ``x`` the prior's logit of the box's class (MMYOLO's choice: only the box's class
    column; MMDetection sums the cost over all classes with a one-hot * IoU soft label),
    IoU that of the predicted box, ``distance`` from the prior to the box centre. Every box
    takes its ``k = max(1, int(sum of its topk largest candidate IoUs))`` cheapest candidates;
    a prior chosen by several boxes goes to the one of lowest cost among them. Everything else
    is negative; ignore regions are not used.

    RTMDet assigns with class logits; :class:`core.contracts.Predictions` carries
    probabilities, so they are mapped back with ``logit(clamp(p, 1e-6, 1 - 1e-6))``: exact for
    logits within about ``±13.8``, clamped beyond (both costs are then already ~0 or large).

    :param soft_center_radius: the centre prior is 1 at this many strides from the centre.
    :param candidate_topk: IoUs summed for the dynamic k.
    :param iou_weight: weight of the IoU cost.
    :param cls_weight: weight of the class cost.
    """

    uses_predictions: ClassVar[bool] = True

    def __init__(self, soft_center_radius: float = 3.0, candidate_topk: int = 13,
                 iou_weight: float = 3.0, cls_weight: float = 1.0) -> None:
        require_positive_int("candidate_topk", candidate_topk)
        self.soft_center_radius = soft_center_radius
        self.candidate_topk = candidate_topk
        self.iou_weight = iou_weight
        self.cls_weight = cls_weight

    def center_prior(self, points: Tensor, strides: Tensor, gt: GTBatch) -> Tensor:
        """``(B, M, N)`` ``10 ** (|prior - box centre| / stride - soft_center_radius)``.

        :param points: ``(N, 2)``. :param strides: ``(N,)``.
        """
        centers = (gt.boxes[..., :2] + gt.boxes[..., 2:]).float() / 2  # (B, M, 2)
        distance = (points[None, None] - centers[:, :, None, :]).norm(dim=-1) / strides
        return torch.pow(10.0, distance - self.soft_center_radius)

    def assign(self, priors: Priors, gt: GTBatch, pred: Predictions | None = None
               ) -> AssignResult:
        """Assign the N priors of B images.

        :param priors: ``(N, 2)`` points (or anchors, by their centres) with ``(N,)`` strides.
        :param gt: padded ground truth (``M`` boxes max).
        :param pred: ``scores (B, N, C)`` probabilities and ``boxes (B, N, 4)`` decoded xyxy.
        :returns: ``(B, N)`` assignment; ``quality`` is each positive's IoU with its box (the
            soft label of the class loss).
        """
        points, strides, pred = dynamic_inputs(priors, pred, "DynamicSoftLabelAssigner")
        if gt.valid.shape[1] == 0:
            return all_negative(gt, priors.num_priors, points.device)
        candidate = (inside_boxes(points, gt.boxes.float()) & gt.valid[:, :, None]).any(dim=1)
        iou = pairwise_iou(gt, pred)
        logits = torch.logit(pred.scores.float(), eps=LOGIT_EPS)
        cost = (self.cls_weight * soft_label_cost(logits, gt.labels, iou)
                + self.iou_weight * -torch.log(iou + IOU_COST_EPS)
                + self.center_prior(points, strides, gt))
        return dynamic_k_result(cost, iou, candidate, gt, self.candidate_topk)
