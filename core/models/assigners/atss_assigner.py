"""Adaptive Training Sample Selection (Zhang et al., CVPR 2020), batched over images."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from core.contracts import NEGATIVE, AssignResult, GTBatch, Predictions, Priors
from core.errors import ConfigError, require_positive_int
from core.models.assigners.quality_matcher import matched_labels
from core.models.box_ops import gt_prior_iou

#: A prior's centre must lie this far (pixels) inside a box to be its positive (MMDetection).
CENTER_EPS = 0.01


class ATSSAssigner:
    """Per gt box: the ``topk`` priors of each level nearest to its centre are candidates;
    candidates whose IoU is at least the mean plus the standard deviation of the candidates'
    IoUs, and whose centre lies inside the box, are positives. A prior positive for several
    boxes goes to the one it overlaps most. Every other prior is negative.

    :param topk: candidates per level and gt box.
    """

    uses_predictions: ClassVar[bool] = False

    def __init__(self, topk: int = 9) -> None:
        require_positive_int("topk", topk)
        self.topk = topk

    def _candidates(self, distances: Tensor, level_sizes: tuple[int, ...]) -> Tensor:
        """``(B, M, K)`` int64 prior indices: the ``topk`` nearest of every level."""
        chosen, start = [], 0
        for size in level_sizes:
            level = distances[..., start:start + size]
            nearest = level.topk(min(self.topk, size), dim=-1, largest=False).indices
            chosen.append(nearest + start)
            start += size
        return torch.cat(chosen, dim=-1)

    def assign(self, priors: Priors, gt: GTBatch, pred: Predictions | None = None
               ) -> AssignResult:
        """Assign anchor priors shared by the batch.

        :param priors: ``(N, 4)`` box priors with their ``level_sizes``.
        :param gt: padded ground truth of B images (``M`` boxes max).
        :param pred: unused (a static assigner).
        :returns: ``(B, N)`` assignment; ``quality`` is the IoU of each positive with its box.
        """
        del pred  # static: geometry alone decides
        if priors.boxes is None or priors.per_image:
            raise ConfigError("ATSSAssigner needs anchor boxes shared by the batch")
        num_images, max_gts = gt.valid.shape
        iou = gt_prior_iou(gt.boxes, priors.boxes)  # (B, M, N)
        if max_gts == 0:
            zeros = iou.new_zeros((num_images, priors.num_priors))
            gt_inds = zeros.long()
            return AssignResult(gt_inds, zeros, gt_inds - 1, gt.num_gts, quality=zeros)
        gt_centers = (gt.boxes[..., :2] + gt.boxes[..., 2:]) / 2  # (B, M, 2)
        distances = (gt_centers[:, :, None, :] - priors.points[None, None]).norm(dim=-1)
        candidates = self._candidates(distances, priors.level_sizes)  # (B, M, K)
        candidate_iou = iou.gather(2, candidates)
        spread = candidate_iou.std(dim=-1, correction=1 if candidates.shape[-1] > 1 else 0)
        threshold = candidate_iou.mean(dim=-1) + spread  # (B, M)
        points = priors.points[candidates]  # (B, M, K, 2)
        boxes = gt.boxes[:, :, None, :]
        inside = torch.cat([points - boxes[..., :2], boxes[..., 2:] - points], dim=-1)
        positive = (candidate_iou >= threshold[..., None]) & (inside.amin(dim=-1) > CENTER_EPS)
        positive &= gt.valid[:, :, None]
        is_positive = torch.zeros_like(iou, dtype=torch.bool).scatter_(2, candidates, positive)
        claimed = iou.masked_fill(~is_positive, -1.0)
        best_iou, best_gt = claimed.max(dim=1)  # (B, N): the claim of highest IoU wins
        gt_inds = torch.where(best_iou >= 0, best_gt + 1, NEGATIVE)
        max_overlaps = iou.masked_fill(~gt.valid[:, :, None], 0.0).amax(dim=1)
        quality = torch.where(gt_inds > NEGATIVE, best_iou, 0.0)
        return AssignResult(gt_inds, max_overlaps, matched_labels(gt_inds, gt), gt.num_gts,
                            quality=quality)
