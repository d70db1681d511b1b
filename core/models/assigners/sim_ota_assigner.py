"""SimOTA (YOLOX, Ge et al. 2021): cost-based assignment with a dynamic number of positives
per box, batched over images."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from core.contracts import AssignResult, GTBatch, Predictions, Priors
from core.errors import require_positive, require_positive_int
from core.models.assigners.dynamic_k import (
    IOU_COST_EPS,
    all_negative,
    dynamic_inputs,
    dynamic_k_result,
    inside_boxes,
    pairwise_iou,
)

#: ``log`` is clamped here, as ``torch.nn.functional.binary_cross_entropy`` does.
LOG_CLAMP = -100.0


def one_hot_bce(scores: Tensor, labels: Tensor) -> Tensor:
    """``(B, M, N)`` BCE of the ``(B, N, C)`` probabilities against each box's one-hot class,
    summed over the C classes, without building the ``(B, M, N, C)`` tensor.

    :param labels: ``(B, M)`` int64 class of each box.
    """
    log_p = scores.log().clamp(min=LOG_CLAMP)
    log_not_p = (1 - scores).log().clamp(min=LOG_CLAMP)
    all_negative_cost = -log_not_p.sum(dim=-1)  # (B, N): every class against target 0
    index = labels[:, None, :].expand(-1, scores.shape[1], -1)  # (B, N, M)
    own_log_p = log_p.gather(2, index).transpose(1, 2)  # (B, M, N)
    own_log_not_p = log_not_p.gather(2, index).transpose(1, 2)
    return all_negative_cost[:, None, :] - own_log_p + own_log_not_p


class SimOTAAssigner:
    """Candidates are priors whose centre lies inside any gt box or inside any box's centre
    square (half-size ``center_radius * stride``). The cost of a (box, prior) pair is
    ``cls_cost + iou_weight * -log(IoU + 1e-7)``, plus ``in_region_penalty`` unless the
    centre lies inside both the box and its centre square; ``cls_cost`` is the BCE of the
    prior's class probabilities against the box's one-hot class, summed over classes, in
    float32. Every box takes its ``k = max(1, int(sum of its topk largest candidate IoUs))``
    cheapest candidates; a prior chosen by several boxes goes to the one of lowest cost among
    them (the references compare every box; see
    :func:`~core.models.assigners.dynamic_k.resolve_claims`). Everything else is negative;
    ignore regions are not used. This is MMDetection's and MMYOLO's SimOTA (in-box or
    in-square candidates, radius 2.5); later official YOLOX uses the square alone with radius
    1.5 (``center_radius = 1.5`` gives the radius, not the square-only candidates).

    The centres are the priors' points as given: YOLOX predicts from cell corners (offset 0)
    and assigns with the cell centres (+0.5 stride), which is what a ``PointGenerator`` with
    ``offset = 0.5`` gives (or anchor boxes' centres). ``pred.scores`` are the probabilities
    the head ranks with (for YOLOX ``sqrt(sigmoid(cls) * sigmoid(obj))``).

    :param center_radius: half-size of the centre square in strides.
    :param candidate_topk: IoUs summed for the dynamic k.
    :param iou_weight: weight of the IoU cost.
    :param cls_weight: weight of the class cost.
    :param in_region_penalty: cost added to pairs outside the box or its centre square.
    """

    uses_predictions: ClassVar[bool] = True

    def __init__(self, center_radius: float = 2.5, candidate_topk: int = 10,
                 iou_weight: float = 3.0, cls_weight: float = 1.0,
                 in_region_penalty: float = 1e5) -> None:
        require_positive("center_radius", center_radius)
        require_positive_int("candidate_topk", candidate_topk)
        self.center_radius = center_radius
        self.candidate_topk = candidate_topk
        self.iou_weight = iou_weight
        self.cls_weight = cls_weight
        self.in_region_penalty = in_region_penalty

    def regions(self, points: Tensor, strides: Tensor, gt: GTBatch) -> tuple[Tensor, Tensor]:
        """``(B, M, N)`` bool centre-inside-box and centre-inside-centre-square tests (False for
        padding boxes).

        :param points: ``(N, 2)`` prior centres. :param strides: ``(N,)``.
        """
        in_box = inside_boxes(points, gt.boxes.float())
        centers = (gt.boxes[..., :2] + gt.boxes[..., 2:]).float() / 2  # (B, M, 2)
        half = (self.center_radius * strides)[None, None, :, None]  # (1, 1, N, 1)
        offset = (points[None, None] - centers[:, :, None, :]).abs()  # (B, M, N, 2)
        in_center = (offset < half).all(dim=-1)
        valid = gt.valid[:, :, None]
        return in_box & valid, in_center & valid

    def assign(self, priors: Priors, gt: GTBatch, pred: Predictions | None = None
               ) -> AssignResult:
        """Assign the N priors of B images.

        :param priors: ``(N, 2)`` points (or anchors, by their centres) with ``(N,)`` strides.
        :param gt: padded ground truth (``M`` boxes max).
        :param pred: ``scores (B, N, C)`` probabilities and ``boxes (B, N, 4)`` decoded xyxy.
        :returns: ``(B, N)`` assignment; ``quality`` is each positive's IoU with its box
            (YOLOX's class target is ``one_hot * IoU``).
        """
        points, strides, pred = dynamic_inputs(priors, pred, "SimOTAAssigner")
        if gt.valid.shape[1] == 0:
            return all_negative(gt, priors.num_priors, points.device)
        in_box, in_center = self.regions(points, strides, gt)
        candidate = (in_box | in_center).any(dim=1)  # (B, N)
        iou = pairwise_iou(gt, pred)
        scores = pred.scores.float().clamp(0.0, 1.0)
        cost = (self.cls_weight * one_hot_bce(scores, gt.labels)
                + self.iou_weight * -torch.log(iou + IOU_COST_EPS)
                + self.in_region_penalty * (~(in_box & in_center)).float())
        return dynamic_k_result(cost, iou, candidate, gt, self.candidate_topk)
