"""Task-aligned assignment (Feng et al., TOOD, ICCV 2021), batched over images, as YOLOv8
uses it: the predictions' class scores and boxes choose the positives."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from core.contracts import NEGATIVE, AssignResult, GTBatch, Predictions, Priors
from core.errors import ConfigError, require_at_least, require_positive, require_positive_int
from core.models.assigners.quality_matcher import matched_labels
from core.models.box_ops import aligned_ciou

#: A prior's centre must lie more than this (pixels) inside a box to be its candidate.
INSIDE_EPS = 1e-9


class TaskAlignedAssigner:
    """Per gt box, among the priors whose centre lies strictly inside it (the candidates),
    the ``topk`` of highest alignment ``score[label] ** alpha * CIoU.clamp(0) ** beta``
    (predicted class probability of the box's class, CIoU of the predicted box with the gt
    box) are claimed; ties go to the lower prior index. A candidate of zero alignment can be
    claimed when fewer than ``topk`` are better (as in the references: it becomes a positive
    with a zero soft target). A prior claimed by several boxes goes to the one of highest
    CIoU (ties to the lower box index). Every other prior is negative; ignore regions are not
    used.

    The soft target of a positive of box ``m`` is
    ``align * max_p CIoU(m, p) / (max_p align(m, p) + eps)`` over the positives ``p`` of
    ``m``: the best-aligned positive of each box gets the box's best CIoU.

    :param topk: priors claimed per gt box (YOLOv8: 10; TOOD: 13).
    :param alpha: exponent of the class score (YOLOv8: 0.5; TOOD: 1.0).
    :param beta: exponent of the CIoU (YOLOv8 and TOOD: 6.0).
    :param eps: guards the soft-target division.
    :param small_box_size: when positive, a box side shorter than the smallest prior stride
        is enlarged to this many pixels around its centre for the candidate test only, so
        that tiny boxes get candidates (newer ultralytics uses 16); 0 keeps boxes as they are.
    """

    uses_predictions: ClassVar[bool] = True

    def __init__(self, topk: int = 10, alpha: float = 0.5, beta: float = 6.0,
                 eps: float = 1e-9, small_box_size: float = 0.0) -> None:
        require_positive_int("topk", topk)
        require_at_least("alpha", alpha, 0)
        require_at_least("beta", beta, 0)
        require_positive("eps", eps)
        require_at_least("small_box_size", small_box_size, 0)
        self.topk = topk
        self.alpha = alpha
        self.beta = beta
        self.eps = eps
        self.small_box_size = small_box_size

    def candidate_boxes(self, boxes: Tensor, min_stride: float) -> Tensor:
        """``(B, M, 4)`` boxes of the candidate test: sides below ``min_stride`` enlarged to
        ``small_box_size`` around the centre when that option is on."""
        if not self.small_box_size:
            return boxes
        centre = (boxes[..., :2] + boxes[..., 2:]) / 2
        size = boxes[..., 2:] - boxes[..., :2]
        size = torch.where(size < min_stride, size.new_tensor(self.small_box_size), size)
        return torch.cat([centre - size / 2, centre + size / 2], dim=-1)

    def candidates(self, points: Tensor, gt: GTBatch, min_stride: float) -> Tensor:
        """``(B, M, N)`` bool: prior centre strictly inside a real box."""
        boxes = self.candidate_boxes(gt.boxes, min_stride)[:, :, None, :]  # (B, M, 1, 4)
        inside = torch.cat([points - boxes[..., :2], boxes[..., 2:] - points], dim=-1)
        return (inside.amin(dim=-1) > INSIDE_EPS) & gt.valid[:, :, None]

    def alignment(self, candidates: Tensor, gt: GTBatch, pred: Predictions
                  ) -> tuple[Tensor, Tensor]:
        """``(B, M, N)`` alignment and clamped CIoU, computed for candidate pairs only
        (0 elsewhere)."""
        image, box, prior = candidates.nonzero(as_tuple=True)
        ciou = aligned_ciou(gt.boxes[image, box], pred.boxes[image, prior].to(gt.boxes.dtype))
        ciou = ciou.nan_to_num(nan=0.0).clamp(min=0)
        score = pred.scores[image, prior, gt.labels[image, box]].to(ciou.dtype)
        overlaps = gt.boxes.new_zeros(candidates.shape)
        align = gt.boxes.new_zeros(candidates.shape)
        overlaps[image, box, prior] = ciou
        align[image, box, prior] = score.pow(self.alpha) * ciou.pow(self.beta)
        return align, overlaps

    def claims(self, align: Tensor, candidates: Tensor) -> Tensor:
        """``(B, M, N)`` bool: the ``topk`` candidates of each box by alignment (a stable
        sort: ties go to the lower prior index)."""
        ranked = align.masked_fill(~candidates, -1.0)
        order = ranked.sort(dim=-1, descending=True, stable=True).indices
        top = order[..., :min(self.topk, align.shape[-1])]
        claimed = torch.zeros_like(candidates).scatter_(-1, top, True)
        return claimed & candidates

    def assign(self, priors: Priors, gt: GTBatch, pred: Predictions | None = None
               ) -> AssignResult:
        """Assign point (or anchor-centre) priors shared by the batch.

        :param priors: ``N`` priors: their ``points (N, 2)`` and ``strides (N,)`` are used.
        :param gt: padded ground truth of B images (``M`` boxes max).
        :param pred: detached ``scores (B, N, C)`` probabilities and decoded ``boxes
            (B, N, 4)`` xyxy.
        :returns: ``(B, N)`` assignment; ``max_overlaps`` is the largest clamped CIoU of the
            prior with a box containing it, ``quality`` the soft target of each positive (0
            elsewhere).
        """
        if pred is None:
            raise ConfigError("TaskAlignedAssigner needs the head's predictions (pred)")
        if priors.per_image:
            raise ConfigError("TaskAlignedAssigner needs priors shared by the batch")
        num_images, num_priors = pred.scores.shape[:2]
        if gt.valid.shape[1] == 0:
            zeros = gt.boxes.new_zeros((num_images, num_priors))
            gt_inds = zeros.long()
            return AssignResult(gt_inds, zeros, gt_inds - 1, gt.num_gts, quality=zeros)
        candidates = self.candidates(priors.points.to(gt.boxes.dtype), gt,
                                     float(priors.strides.min()))
        align, overlaps = self.alignment(candidates, gt, pred)
        claimed = self.claims(align, candidates)
        best_overlap, best_gt = overlaps.masked_fill(~claimed, -1.0).max(dim=1)  # (B, N)
        gt_inds = torch.where(best_overlap >= 0, best_gt + 1, NEGATIVE)
        positive = claimed & (torch.arange(gt.valid.shape[1], device=gt_inds.device)[
            None, :, None] == (gt_inds - 1)[:, None, :])  # (B, M, N), one box per prior
        pos_align = align * positive
        box_max_align = pos_align.amax(dim=-1, keepdim=True)
        box_max_overlap = (overlaps * positive).amax(dim=-1, keepdim=True)
        quality = (pos_align * box_max_overlap / (box_max_align + self.eps)).amax(dim=1)
        return AssignResult(gt_inds, overlaps.amax(dim=1), matched_labels(gt_inds, gt),
                            gt.num_gts, quality=quality)
