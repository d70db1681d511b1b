"""Assign priors to gt boxes by IoU thresholds, for all images of a batch at once."""

from __future__ import annotations

from typing import ClassVar, Literal

from torch import Tensor

from core.contracts import AssignResult, GTBatch, Predictions, Priors
from core.errors import ConfigError
from core.models.assigners.quality_matcher import QualityMatcher
from core.models.box_ops import box_iof, gt_prior_iou


class MaxIoUAssigner:
    """Each prior takes the gt it overlaps most; IoU thresholds decide its role
    (see :class:`~core.models.assigners.quality_matcher.QualityMatcher`).

    Priors covered by an ignore region (intersection over prior area above ``ignore_iof_thr``;
    disabled when negative) and padding of per-image priors are ignored.

    :param pos_iou_thr: IoU at or above which a prior is positive.
    :param neg_iou_thr: IoU below which a prior is negative.
    :param min_pos_iou: smallest IoU a low-quality match may have.
    :param ignore_iof_thr: ignore-region overlap above which a prior is ignored.
    :param gt_max_assign_all: for low-quality matches take every prior tied at a gt's best IoU,
        not only the first one.
    :param allow_low_quality_matches: give every gt its best prior(s).
    :param low_quality_gt: ``"self"`` (MMDetection) or ``"best"`` (torchvision's ``Matcher``).
    """

    uses_predictions: ClassVar[bool] = False

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
        self.ignore_iof_thr = ignore_iof_thr
        self.matcher = QualityMatcher(pos_iou_thr, neg_iou_thr, min_pos_iou, gt_max_assign_all,
                                      allow_low_quality_matches, low_quality_gt)

    def _excluded_priors(self, boxes: Tensor, priors: Priors, gt: GTBatch) -> Tensor | None:
        """``(B, N)`` bool: ignore-region cover beyond ``ignore_iof_thr`` or prior padding."""
        excluded = None if priors.valid is None else ~priors.valid
        if self.ignore_iof_thr >= 0 and gt.ignore_valid.any():
            covered = box_iof(boxes, gt.ignore_boxes, gt.ignore_valid) > self.ignore_iof_thr
            excluded = covered if excluded is None else excluded | covered
        return excluded

    def assign(self, priors: Priors, gt: GTBatch, pred: Predictions | None = None
               ) -> AssignResult:
        """Assign box priors (shared or per image) to each image's gt boxes.

        :param priors: box priors, ``(N, 4)`` or ``(B, N, 4)``.
        :param gt: padded ground truth of B images (``M`` boxes max).
        :param pred: unused (a static assigner).
        :returns: an :class:`AssignResult` with ``(B, N)`` tensors.
        """
        del pred  # static: the IoU of priors and boxes decides
        if priors.boxes is None:
            raise ConfigError("MaxIoUAssigner needs box priors (anchors or proposals), got points")
        quality = gt_prior_iou(gt.boxes, priors.boxes)
        return self.matcher(quality, gt, self._excluded_priors(priors.boxes, priors, gt),
                            overwrite=True)
