"""Assigner statistics a dense head reports next to ``num_pos``: how many positives each gt
box gets, how many boxes get none, and how the positives spread over the pyramid levels.

Computed with a few reductions over the ``(B, N)`` assignment (no loop over boxes, no host
synchronisation); a batch without gt boxes reports 0 for the per-box values.
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


def positives_per_gt(sampling: SampleResult, num_gts: int) -> Tensor:
    """``(B, M)`` float number of sampled positives matched to each (padded) gt box."""
    pos = sampling.pos_mask
    column = torch.where(pos, sampling.assign_result.gt_inds, 0)  # 0 collects the rest
    counts = torch.zeros((pos.shape[0], num_gts + 1), device=pos.device)
    return counts.scatter_add_(1, column, pos.float())[:, 1:]


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
    counts = positives_per_gt(sampling, valid.shape[1])
    num_boxes = valid.sum()
    has_boxes = num_boxes > 0
    denominator = num_boxes.clamp(min=1).float()
    smallest = counts.masked_fill(~valid, torch.inf).amin() if valid.numel() else counts.sum()
    stats = {
        POS_PER_GT_MEAN: (counts * valid).sum() / denominator,
        POS_PER_GT_MIN: torch.where(has_boxes, smallest, 0.0),
        GT_WITHOUT_POS: ((counts == 0) & valid).sum() / denominator,
    }
    per_level = torch.split(sampling.pos_mask, list(level_sizes), dim=1)
    for level, mask in enumerate(per_level):
        stats[level_key(level)] = mask.sum().float()
    return stats
