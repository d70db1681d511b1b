"""Assigner statistics a dense head reports next to ``num_pos``: how many positives each gt
box gets, how many boxes get none, and how the positives spread over the pyramid levels.

Computed from the positives' indices (one pass over the ``(B, N)`` mask, then work in the
number of positives; no loop over boxes); a batch without gt boxes reports 0 for the per-box
values.
"""

from __future__ import annotations

import torch
from torch import Tensor

from core.contracts import GTBatch, SampleResult

#: Prefix of the statistics' keys in a head's loss dict (logged as ``train/assign/...``).
STATS_PREFIX = "assign/"
POS_PER_GT_MEAN = STATS_PREFIX + "pos_per_gt_mean"
POS_PER_GT_MIN = STATS_PREFIX + "pos_per_gt_min"
GT_WITHOUT_POS = STATS_PREFIX + "gt_without_pos"


def level_key(level: int) -> str:
    """Key of the number of positives on pyramid level ``level`` (0 = finest)."""
    return f"{STATS_PREFIX}num_pos_level{level}"


def positives_per_gt(pos_image: Tensor, pos_gt: Tensor, num_images: int, num_gts: int
                     ) -> Tensor:
    """``(B, M)`` float number of positives matched to each (padded) gt box.

    :param pos_image: ``(P,)`` int64 image of each positive.
    :param pos_gt: ``(P,)`` int64 1-based gt index of each positive.
    """
    flat = torch.bincount(pos_image * (num_gts + 1) + pos_gt,
                          minlength=num_images * (num_gts + 1))
    return flat.view(num_images, num_gts + 1)[:, 1:].float()


def assignment_stats(sampling: SampleResult, gt: GTBatch, level_sizes: tuple[int, ...]
                     ) -> dict[str, Tensor]:
    """0-d float tensors over the batch:

    * ``assign/pos_per_gt_mean``, ``assign/pos_per_gt_min``: positives per real gt box;
    * ``assign/gt_without_pos``: share of real gt boxes without a positive (0..1);
    * ``assign/num_pos_level<l>``: positives on each level.

    :param sampling: the sampled ``(B, N)`` positives and their assignment.
    :param gt: the padded ground truth of the batch.
    :param level_sizes: priors per level (sums to ``N``).
    """
    valid = gt.valid
    pos_image, pos_prior = sampling.pos_mask.nonzero(as_tuple=True)
    pos_gt = sampling.assign_result.gt_inds[pos_image, pos_prior]
    counts = positives_per_gt(pos_image, pos_gt, valid.shape[0], valid.shape[1])
    num_boxes = valid.sum()
    has_boxes = num_boxes > 0
    denominator = num_boxes.clamp(min=1).float()
    smallest = counts.masked_fill(~valid, torch.inf).amin() if valid.numel() else counts.sum()
    stats = {
        POS_PER_GT_MEAN: (counts * valid).sum() / denominator,
        POS_PER_GT_MIN: torch.where(has_boxes, smallest, 0.0),
        GT_WITHOUT_POS: ((counts == 0) & valid).sum() / denominator,
    }
    level_ends = torch.tensor(level_sizes, device=pos_prior.device).cumsum(0)
    levels = torch.bucketize(pos_prior, level_ends, right=True)
    per_level = torch.bincount(levels, minlength=len(level_sizes)).float()
    for level in range(len(level_sizes)):
        stats[level_key(level)] = per_level[level]
    return stats
