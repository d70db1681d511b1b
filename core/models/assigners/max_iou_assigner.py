"""Assign priors to gt boxes by IoU thresholds, for all images of a batch at once."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torchvision.ops import box_iou

from core.errors import ConfigError
from core.models.assigners.assign_result import IGNORE, NEGATIVE, AssignResult
from core.models.box_ops import box_iof
from core.models.gt_batch import GTBatch

#: IoU written for padding gts and ignored priors; below every real IoU.
EXCLUDED_IOU = -1.0


class MaxIoUAssigner:
    """Each prior takes the gt it overlaps most; thresholds on that IoU decide its role.

    * ``IoU < neg_iou_thr`` (and >= 0): negative (``gt_inds = 0``);
    * ``IoU >= pos_iou_thr``: positive for its best gt (``gt_inds = i + 1``);
    * in between: ignored (``gt_inds = -1``);
    * priors whose intersection-over-prior-area with an ignore region exceeds
      ``ignore_iof_thr`` are ignored (disabled when ``ignore_iof_thr < 0``);
    * low-quality matches (``allow_low_quality_matches``): for every gt whose best IoU is
      ``>= min_pos_iou`` (and > 0), the prior(s) with that best IoU become positive, so each gt
      gets at least one prior. With ``low_quality_gt = "self"`` they match that gt (the last
      gt wins when a prior is best for several, as in MMDetection); with ``"best"`` they keep
      their own best gt (torchvision's ``Matcher``).

    :param gt_max_assign_all: for low-quality matches take every prior tied at a gt's best IoU,
        not only the first one.
    """

    def __init__(
        self,
        pos_iou_thr: float = 0.5,
        neg_iou_thr: float = 0.4,
        min_pos_iou: float = 0.0,
        ignore_iof_thr: float = -1.0,
        gt_max_assign_all: bool = True,
        allow_low_quality_matches: bool = True,
        low_quality_gt: Literal["self", "best"] = "self",
    ) -> None:
        if neg_iou_thr > pos_iou_thr:
            raise ConfigError(
                f"neg_iou_thr ({neg_iou_thr}) must not exceed pos_iou_thr ({pos_iou_thr})"
            )
        self.pos_iou_thr = pos_iou_thr
        self.neg_iou_thr = neg_iou_thr
        self.min_pos_iou = min_pos_iou
        self.ignore_iof_thr = ignore_iof_thr
        self.gt_max_assign_all = gt_max_assign_all
        self.allow_low_quality_matches = allow_low_quality_matches
        self.low_quality_gt = low_quality_gt

    def _ignored_priors(self, priors: Tensor, gt: GTBatch) -> Tensor:
        """``(B, N)`` bool: priors covered by an ignore region beyond ``ignore_iof_thr``."""
        if self.ignore_iof_thr < 0 or not gt.ignore_valid.any():
            return torch.zeros(
                (gt.valid.shape[0], priors.shape[0]), dtype=torch.bool, device=priors.device
            )
        return box_iof(priors, gt.ignore_boxes, gt.ignore_valid) > self.ignore_iof_thr

    def _low_quality_candidates(self, overlaps: Tensor, valid: Tensor) -> Tensor:
        """``(B, M, N)`` bool: prior n is (one of) the best prior(s) of real gt m."""
        gt_max, gt_argmax = overlaps.max(dim=2)  # (B, M)
        eligible = valid & (gt_max >= self.min_pos_iou) & (gt_max > 0)
        if self.gt_max_assign_all:
            return (overlaps == gt_max[:, :, None]) & eligible[:, :, None]
        best = torch.zeros_like(overlaps, dtype=torch.bool)
        return best.scatter_(2, gt_argmax[:, :, None], eligible[:, :, None])

    def assign(self, priors: Tensor, gt: GTBatch) -> AssignResult:
        """Assign N priors shared by all images to each image's gt boxes.

        :param priors: ``(N, 4)`` xyxy prior boxes (anchors).
        :param gt: padded ground truth of B images (``M`` boxes max).
        :returns: an :class:`AssignResult` with ``(B, N)`` tensors.
        """
        num_images, max_gts = gt.valid.shape
        num_priors = priors.shape[0]
        device = priors.device
        ignored = self._ignored_priors(priors, gt)
        if max_gts:
            overlaps = box_iou(gt.boxes.reshape(-1, 4), priors).view(num_images, max_gts, -1)
            overlaps = overlaps.masked_fill(~gt.valid[:, :, None], EXCLUDED_IOU)
            overlaps = overlaps.masked_fill(ignored[:, None, :], EXCLUDED_IOU)
            max_overlaps, argmax = overlaps.max(dim=1)  # (B, N)
        else:
            max_overlaps = priors.new_zeros((num_images, num_priors))
            argmax = torch.zeros((num_images, num_priors), dtype=torch.long, device=device)
        # Priors of an image without gts are negatives (IoU 0) unless an ignore region covers them.
        no_gt = (gt.num_gts == 0)[:, None]
        max_overlaps = torch.where(no_gt, 0.0, max_overlaps).masked_fill(ignored, EXCLUDED_IOU)

        gt_inds = torch.full((num_images, num_priors), IGNORE, dtype=torch.long, device=device)
        gt_inds[(max_overlaps >= 0) & (max_overlaps < self.neg_iou_thr)] = NEGATIVE
        gt_inds = torch.where(max_overlaps >= self.pos_iou_thr, argmax + 1, gt_inds)
        if self.allow_low_quality_matches and max_gts:
            candidates = self._low_quality_candidates(overlaps, gt.valid)
            if self.low_quality_gt == "self":
                gt_numbers = torch.arange(1, max_gts + 1, device=device)[None, :, None]
                chosen = (candidates * gt_numbers).amax(dim=1)  # (B, N); 0 = none, last gt wins
                gt_inds = torch.where(chosen > 0, chosen, gt_inds)
            else:
                gt_inds = torch.where(candidates.any(dim=1), argmax + 1, gt_inds)
        labels = torch.full_like(gt_inds, -1)
        if max_gts:
            matched_labels = gt.labels.gather(1, (gt_inds - 1).clamp(min=0))
            labels = torch.where(gt_inds > 0, matched_labels, labels)
        return AssignResult(gt_inds, max_overlaps, labels, gt.num_gts)
