"""Thresholding a gt-by-prior quality matrix into an assignment (any quality: IoU, a
centre-prior score, an alignment metric), batched over images."""

from __future__ import annotations

import math
from typing import Literal

import attrs
import torch
from torch import Tensor

from core.contracts import IGNORE, NEGATIVE, AssignResult, GTBatch

#: Quality written for padding gts and excluded priors; below every real quality.
EXCLUDED = -1.0
#: Largest share of priors whose low-quality match is checked prior by prior.
SPARSE_SHARE = 1 / 16


@attrs.frozen
class QualityMatcher:
    """Each prior takes the gt of highest quality; thresholds on that quality decide its role.

    * ``q < neg_thr`` (and >= 0): negative (``gt_inds = 0``);
    * ``q >= pos_thr``: positive for its best gt (``gt_inds = i + 1``);
    * in between, or excluded (``q < 0``): ignored (``gt_inds = -1``);
    * low-quality matches (``allow_low_quality_matches``): for every gt whose best quality is
      ``>= min_pos`` (and > 0), the prior(s) with that best quality become positive, so each
      gt gets at least one prior. With ``low_quality_gt = "self"`` they match that gt (the last
      gt wins when a prior is best for several, as in MMDetection); with ``"best"`` they keep
      their own best gt (torchvision's ``Matcher``).

    :param gt_max_assign_all: for low-quality matches take every prior tied at a gt's best
        quality, not only the first one.
    """

    pos_thr: float
    neg_thr: float
    min_pos: float = 0.0
    gt_max_assign_all: bool = True
    allow_low_quality_matches: bool = True
    low_quality_gt: Literal["self", "best"] = "self"

    def _low_quality_candidates(self, quality: Tensor, valid: Tensor) -> Tensor:
        """``(B, M, N)`` bool: prior n is (one of) the best prior(s) of real gt m."""
        gt_max, gt_argmax = quality.max(dim=2)  # (B, M)
        eligible = valid & (gt_max >= self.min_pos) & (gt_max > 0)
        if self.gt_max_assign_all:
            return (quality == gt_max[:, :, None]) & eligible[:, :, None]
        best = torch.zeros_like(quality, dtype=torch.bool)
        return best.scatter_(2, gt_argmax[:, :, None], eligible[:, :, None])

    def _is_low_quality_match(self, quality: Tensor, valid: Tensor, max_quality: Tensor
                              ) -> Tensor:
        """``(B, N)`` bool: prior n is (one of) the best prior(s) of some real gt.

        :param max_quality: ``(B, N)`` best quality of each prior over the gts.
        """
        if not self.gt_max_assign_all:
            return self._low_quality_candidates(quality, valid).any(dim=1)
        gt_max = quality.amax(dim=2)  # (B, M)
        eligible = valid & (gt_max >= self.min_pos) & (gt_max > 0)
        # A prior can be some gt's best only if its own best reaches the lowest such best:
        # usually a few hundred priors, compared with the gts' bests one by one.
        lowest = gt_max.masked_fill(~eligible, math.inf).amin(dim=1)  # (B,)
        image, prior = (max_quality >= lowest[:, None]).nonzero(as_tuple=True)
        if len(image) <= SPARSE_SHARE * max_quality.numel():
            best_of_gt = quality[image, :, prior] == gt_max[image]  # (K, M)
            hit = (best_of_gt & eligible[image]).any(dim=1)
            match = torch.zeros_like(max_quality, dtype=torch.bool)
            return match.index_put_((image[hit], prior[hit]), hit.new_ones(()))
        # q - gt_max is 0 exactly where q equals its gt's best (never above it) and -inf for
        # gts that may not match: a subtraction and a max, cheaper than a (B, M, N) bool
        shortfall = quality - gt_max.masked_fill(~eligible, math.inf)[:, :, None]
        return shortfall.amax(dim=1) == 0

    def __call__(self, quality: Tensor, gt: GTBatch, excluded: Tensor | None = None,
                 overwrite: bool = False) -> AssignResult:
        """Assign N priors of B images.

        :param quality: ``(B, M, N)`` quality of every (gt, prior) pair; padding gts are
            masked here.
        :param gt: the padded ground truth (``valid``, ``labels``, ``num_gts``).
        :param excluded: ``(B, N)`` bool priors to ignore whatever their quality (ignore
            regions, padding of per-image priors), or None.
        :param overwrite: ``quality`` is the caller's to discard: padding and excluded priors
            are written into it instead of into a copy.
        :returns: ``(B, N)`` assignment; ``max_overlaps`` is the best quality (``-1`` for
            excluded priors, 0 in images without gt).
        """
        num_images, max_gts, num_priors = quality.shape
        device = quality.device
        if max_gts:
            if overwrite:
                quality[(~gt.valid).nonzero(as_tuple=True)] = EXCLUDED  # the padding rows
            else:
                quality = quality.masked_fill(~gt.valid[:, :, None], EXCLUDED)  # a copy
            if excluded is not None:
                quality.masked_fill_(excluded[:, None, :], EXCLUDED)
            max_quality = quality.amax(dim=1)  # (B, N)
        else:
            max_quality = quality.new_zeros((num_images, num_priors))
        # Priors of an image without gts are negatives (0) unless excluded.
        no_gt = gt.num_gts == 0
        if bool(no_gt.any()):
            max_quality = torch.where(no_gt[:, None], 0.0, max_quality)
        negative = max_quality < self.neg_thr  # real qualities are >= 0
        if excluded is not None:
            max_quality = max_quality.masked_fill(excluded, EXCLUDED)
            negative &= ~excluded
        gt_inds = torch.where(negative, NEGATIVE, IGNORE)  # (B, N) int64
        positive = max_quality >= self.pos_thr
        if self.allow_low_quality_matches and max_gts and self.low_quality_gt == "best":
            positive |= self._is_low_quality_match(quality, gt.valid, max_quality)
        gt_inds = _match_best_gt(gt_inds, quality, positive)
        if self.allow_low_quality_matches and max_gts and self.low_quality_gt == "self":
            candidates = self._low_quality_candidates(quality, gt.valid)
            gt_numbers = torch.arange(1, max_gts + 1, device=device)[None, :, None]
            chosen = (candidates * gt_numbers).amax(dim=1)  # (B, N); 0 = none, last wins
            gt_inds = torch.where(chosen > 0, chosen, gt_inds)
        return AssignResult(gt_inds, max_quality, matched_labels(gt_inds, gt), gt.num_gts)


def _match_best_gt(gt_inds: Tensor, quality: Tensor, positive: Tensor) -> Tensor:
    """``gt_inds`` with each ``positive`` prior matched to its best gt (the first of equals,
    as ``quality.max(dim=1)``); the best gt is searched for the positives only.

    :param gt_inds: ``(B, N)`` int64. :param quality: ``(B, M, N)``, padding masked.
    :param positive: ``(B, N)`` bool.
    """
    image, prior = positive.nonzero(as_tuple=True)
    if not quality.shape[1]:  # no gt anywhere: a positive takes the (absent) first gt
        best = torch.zeros_like(image)
    else:
        best = quality[image, :, prior].argmax(dim=1)  # (P,)
    return gt_inds.index_put((image, prior), best + 1)


def matched_labels(gt_inds: Tensor, gt: GTBatch) -> Tensor:
    """``(B, N)`` int64 class of each positive's gt, ``-1`` elsewhere."""
    if not gt.valid.shape[1]:
        return torch.full_like(gt_inds, -1)
    # columns for gt_inds + 1: ignored (-1) and negative (0) priors, then the gts
    table = torch.cat([gt.labels.new_full((gt.labels.shape[0], 2), -1), gt.labels], dim=1)
    return table.gather(1, gt_inds + 1)
