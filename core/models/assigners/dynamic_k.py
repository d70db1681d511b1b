"""Shared steps of the cost-based dynamic-k assigners (SimOTA, DynamicSoftLabel), batched
over padded ground truth: point-in-box tests, the dynamic k of every box, the k cheapest priors
per box and the resolution of priors claimed by several boxes.

Shapes: ``B`` images, ``M`` padded gt boxes, ``N`` priors.
"""

from __future__ import annotations

import torch
from torch import Tensor

from core.contracts import NEGATIVE, AssignResult, GTBatch, Predictions, Priors
from core.errors import ConfigError
from core.models.assigners.quality_matcher import matched_labels
from core.models.box_ops import gt_prior_iou

#: Added to ``IoU`` before its logarithm in the IoU cost (both references).
IOU_COST_EPS = 1e-7
#: Cost of a (box, prior) pair that may never match (non-candidates, padding boxes).
NEVER = float("inf")


def dynamic_inputs(priors: Priors, pred: Predictions | None, name: str
                   ) -> tuple[Tensor, Tensor, Predictions]:
    """``(N, 2)`` float32 prior centres, ``(N,)`` strides and the predictions, checking what a
    dynamic assigner needs.

    :raises ConfigError: per-image priors, or no predictions.
    """
    if priors.per_image:
        raise ConfigError(f"{name} needs priors shared by the batch (a dense head's grid)")
    if pred is None:
        raise ConfigError(f"{name} uses the network's predictions; the head passed none")
    return priors.points.float(), priors.strides.float(), pred


def inside_boxes(points: Tensor, boxes: Tensor) -> Tensor:
    """``(B, M, N)`` bool: point ``n`` strictly inside box ``m`` of image ``b``.

    :param points: ``(N, 2)`` ``(x, y)``.
    :param boxes: ``(B, M, 4)`` xyxy.
    """
    xy = points[None, None]  # (1, 1, N, 2)
    left_top = xy - boxes[:, :, None, :2]
    right_bottom = boxes[:, :, None, 2:] - xy
    return torch.cat([left_top, right_bottom], dim=-1).amin(dim=-1) > 0


def pairwise_iou(gt: GTBatch, pred: Predictions) -> Tensor:
    """``(B, M, N)`` float32 IoU of every gt box with every predicted box, 0 for padding."""
    iou = gt_prior_iou(gt.boxes.float(), pred.boxes.float())
    return iou.masked_fill(~gt.valid[:, :, None], 0.0)


def dynamic_ks(iou: Tensor, candidate: Tensor, topk: int) -> Tensor:
    """``(B, M)`` int64 ``max(1, int(sum of the box's topk largest candidate IoUs)))``.

    :param iou: ``(B, M, N)`` IoU of boxes with predicted boxes.
    :param candidate: ``(B, N)`` bool, priors that may be assigned at all.
    """
    candidate_iou = iou.masked_fill(~candidate[:, None, :], 0.0)
    top = candidate_iou.topk(min(topk, iou.shape[-1]), dim=-1).values
    return top.sum(dim=-1).long().clamp(min=1)


def cheapest_k(cost: Tensor, ks: Tensor) -> Tensor:
    """``(B, M, N)`` bool: the ``ks[b, m]`` priors of lowest finite cost of every box.

    :param cost: ``(B, M, N)``; ``inf`` marks pairs that never match.
    :param ks: ``(B, M)`` int64 number of priors per box.
    """
    k_max = int(ks.max()) if ks.numel() else 0
    k_max = min(k_max, cost.shape[-1])
    order = cost.topk(k_max, dim=-1, largest=False).indices  # (B, M, k_max), cheapest first
    keep = torch.arange(k_max, device=cost.device)[None, None, :] < ks[..., None]
    chosen = torch.zeros_like(cost, dtype=torch.bool).scatter_(-1, order, keep)
    return chosen & torch.isfinite(cost)


def resolve_claims(cost: Tensor, chosen: Tensor) -> Tensor:
    """``(B, N)`` int64 ``gt_inds``: a prior chosen by one or more boxes goes to the claiming
    box of lowest cost (``i + 1``); unclaimed priors are negative (0).

    The references (YOLOX, MMDetection) take the lowest cost over every box, claiming or not;
    here only the boxes that chose the prior compete, so a positive always belongs to a box
    that picked it.

    :param cost: ``(B, M, N)`` matching cost.
    :param chosen: ``(B, M, N)`` bool, the boxes' picks.
    """
    claimed_cost = cost.masked_fill(~chosen, NEVER)
    _, best_gt = claimed_cost.min(dim=1)  # (B, N)
    return torch.where(chosen.any(dim=1), best_gt + 1, NEGATIVE)


def dynamic_k_result(cost: Tensor, iou: Tensor, candidate: Tensor, gt: GTBatch,
                     topk: int) -> AssignResult:
    """Dynamic k per box, its k cheapest priors, claims resolved by cost.

    :param cost: ``(B, M, N)`` matching cost, ``inf`` for pairs that never match.
    :param iou: ``(B, M, N)`` IoU of the boxes with the predicted boxes (0 for padding).
    :param candidate: ``(B, N)`` bool, priors that may be assigned.
    :param topk: IoUs summed for the dynamic k.
    :returns: ``quality`` and ``max_overlaps`` of a positive are its IoU with its box;
        ``max_overlaps`` of the other priors is their best IoU with any box.
    """
    cost = cost.masked_fill(~(gt.valid[:, :, None] & candidate[:, None, :]), NEVER)
    chosen = cheapest_k(cost, dynamic_ks(iou, candidate, topk))
    gt_inds = resolve_claims(cost, chosen)
    positive = gt_inds > NEGATIVE
    matched_iou = iou.gather(1, (gt_inds - 1).clamp(min=0)[:, None, :])[:, 0]
    quality = torch.where(positive, matched_iou, 0.0)
    max_overlaps = torch.where(positive, matched_iou, iou.amax(dim=1))
    return AssignResult(gt_inds, max_overlaps, matched_labels(gt_inds, gt), gt.num_gts,
                        quality=quality)


def all_negative(gt: GTBatch, num_priors: int, device: torch.device) -> AssignResult:
    """Every prior negative (a batch without gt boxes)."""
    zeros = torch.zeros((gt.valid.shape[0], num_priors), device=device)
    gt_inds = zeros.long()
    return AssignResult(gt_inds, zeros, gt_inds - 1, gt.num_gts, quality=zeros)
