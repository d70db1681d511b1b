"""Random sampling of a fixed number of priors per image with a positive fraction."""

from __future__ import annotations

import torch
from torch import Tensor

from core.contracts import NEGATIVE, AssignResult, GTBatch, Priors, SampleResult
from core.errors import ConfigError, require_positive_int

#: ``neg_pos_ub`` value meaning "no upper bound on negatives per positive".
NO_UPPER_BOUND = -1
#: IoU of a gt box appended as a proposal with itself.
SELF_IOU = 1.0
#: Random key of a non-candidate: above every ``torch.rand`` key.
NON_CANDIDATE_KEY = 2.0
#: Rows with at least this many candidates per wanted entry are sampled by random draws.
DENSE_CANDIDATES = 8
#: Draws beyond twice the quota in :func:`_first_distinct_draws`.
EXTRA_DRAWS = 64


def random_subset(candidates: Tensor, quota: Tensor, max_quota: int) -> Tensor:
    """Pick ``quota[b]`` random True entries of each row (all of them if fewer).

    Rows with many more candidates than their quota (an RPN's negatives: tens of thousands
    for 256) take the first distinct candidates of uniform random draws
    (:func:`_first_distinct_draws`), a uniform random subset from a few hundred draws;
    otherwise the entries with the smallest random keys, a tie on the last key taken in
    index order (:func:`_smallest_keys`).

    :param candidates: ``(B, N)`` bool.
    :param quota: ``(B,)`` int64 number to keep per row.
    :param max_quota: an upper bound on ``quota``.
    :returns: ``(B, N)`` bool subset of ``candidates``; uses the global torch RNG.
    """
    counts = candidates.sum(dim=1)
    if bool((counts <= quota).all()):
        return candidates
    if bool((counts >= DENSE_CANDIDATES * quota.clamp(min=1)).all()):
        chosen = _first_distinct_draws(candidates, quota, max_quota)
        if chosen is not None:
            return chosen
    return _smallest_keys(candidates, quota, max_quota)


def _first_distinct_draws(candidates: Tensor, quota: Tensor, max_quota: int) -> Tensor | None:
    """Per row, the first ``quota`` distinct candidates among ``2 * max_quota + 64`` uniform
    draws of an index: the draws that hit a candidate are uniform over the candidates, so
    their first ``q`` distinct values are a uniform random ``q``-subset. None in the
    (improbable) case that the draws hold too few distinct candidates."""
    num_images, num = candidates.shape
    index = torch.randint(num, (num_images, 2 * max_quota + EXTRA_DRAWS),
                          device=candidates.device)
    sorted_index, order = index.sort(dim=1, stable=True)
    first_sorted = torch.ones_like(sorted_index, dtype=torch.bool)
    first_sorted[:, 1:] = sorted_index[:, 1:] != sorted_index[:, :-1]
    first = torch.empty_like(first_sorted).scatter_(1, order, first_sorted)
    usable = first & candidates.gather(1, index)
    take = usable & (usable.cumsum(dim=1) <= quota[:, None])
    if bool((take.sum(dim=1) < quota).any()):
        return None
    rows = torch.arange(num_images, device=index.device)[:, None].expand_as(index)
    return torch.zeros_like(candidates).index_put_((rows[take], index[take]),
                                                   torch.ones((), dtype=torch.bool,
                                                              device=index.device))


def _smallest_keys(candidates: Tensor, quota: Tensor, max_quota: int) -> Tensor:
    """Per row, the ``quota`` candidates with the smallest ``torch.rand`` keys, a tie on the
    last key taken in index order; only the ``max_quota`` smallest keys per row are ranked
    (``torch.topk``), not the row."""
    num_ranked = min(max_quota, candidates.shape[1])
    if num_ranked < 1:
        return torch.zeros_like(candidates)
    keys = torch.rand(candidates.shape, device=candidates.device)
    keys = torch.where(candidates, keys, NON_CANDIDATE_KEY)
    quota = quota.clamp(max=num_ranked)
    smallest = keys.topk(num_ranked, dim=1, largest=False).values  # (B, K) ascending
    last_key = smallest.gather(1, (quota - 1).clamp(min=0)[:, None])  # (B, 1)
    wanted = candidates & (quota > 0)[:, None]
    chosen = wanted & (keys <= last_key)
    if bool((chosen.sum(dim=1) > quota).any()):  # keys tied with the last one: index order
        below = keys < last_key
        tied = keys == last_key
        room = quota[:, None] - below.sum(dim=1, keepdim=True)
        chosen = wanted & (below | (tied & (tied.cumsum(dim=1) <= room)))
    return chosen


class RandomSampler:
    """Samples ``num`` priors per image, at most ``num * pos_fraction`` of them positive.

    :param num: priors sampled per image.
    :param pos_fraction: upper bound on the positive share.
    :param neg_pos_ub: at most ``neg_pos_ub * max(1, positives)`` negatives (-1: no bound).
    :param add_gt_as_proposals: append each image's gt boxes to its priors as positives
        matched to themselves (for RoI heads working on proposals).
    """

    def __init__(
        self,
        num: int = 512,
        pos_fraction: float = 0.25,
        neg_pos_ub: int = NO_UPPER_BOUND,
        add_gt_as_proposals: bool = False,
    ) -> None:
        require_positive_int("num", num)
        if not 0.0 <= pos_fraction <= 1.0:
            raise ConfigError(f"pos_fraction: expected a value in [0, 1], got {pos_fraction}")
        self.num = num
        self.pos_fraction = pos_fraction
        self.neg_pos_ub = neg_pos_ub
        self.add_gt_as_proposals = add_gt_as_proposals

    def _with_gt_proposals(
        self, assign_result: AssignResult, priors: Priors, gt: GTBatch
    ) -> tuple[AssignResult, Priors]:
        """Prepend the ``M`` padded gt boxes to every image's priors: ``(B, M + N, 4)``."""
        if priors.boxes is None:
            raise ConfigError("add_gt_as_proposals: needs box priors, got points")
        num_images, max_gts = gt.valid.shape
        device = gt.boxes.device
        own_index = torch.arange(1, max_gts + 1, device=device).expand(num_images, -1)
        gt_inds = torch.where(gt.valid, own_index, torch.full_like(own_index, -1))
        labels = torch.where(gt.valid, gt.labels, torch.full_like(gt.labels, -1))
        overlaps = gt.valid.to(gt.boxes.dtype) * SELF_IOU
        quality = assign_result.quality
        extended = AssignResult(
            gt_inds=torch.cat([gt_inds, assign_result.gt_inds], dim=1),
            max_overlaps=torch.cat([overlaps, assign_result.max_overlaps], dim=1),
            labels=torch.cat([labels, assign_result.labels], dim=1),
            num_gts=assign_result.num_gts,
            quality=None if quality is None else torch.cat([overlaps, quality], dim=1),
        )

        def per_image(values: Tensor) -> Tensor:
            return values if priors.per_image else values.expand(num_images, *values.shape)

        gt_centers = (gt.boxes[..., :2] + gt.boxes[..., 2:]) / 2
        all_priors = Priors(
            points=torch.cat([gt_centers, per_image(priors.points)], dim=1),
            strides=torch.cat([gt.boxes.new_zeros((num_images, max_gts)),
                               per_image(priors.strides)], dim=1),
            level_sizes=(max_gts + priors.num_priors,),
            boxes=torch.cat([gt.boxes, per_image(priors.boxes)], dim=1),
            valid=torch.cat([gt.valid, priors.valid_mask(num_images)], dim=1),
        )
        return extended, all_priors

    def sample(self, assign_result: AssignResult, priors: Priors, gt: GTBatch) -> SampleResult:
        """Sample positives then negatives for every image at once.

        :param assign_result: ``(B, N)`` assignment.
        :param priors: the assigned priors.
        :param gt: padded ground truth, used when ``add_gt_as_proposals``.
        :returns: ``(B, N')`` masks with ``N' = N`` (or ``M + N`` with gt proposals first).
        """
        if self.add_gt_as_proposals and gt.valid.shape[1]:
            assign_result, priors = self._with_gt_proposals(assign_result, priors, gt)
        pos_candidates = assign_result.gt_inds > NEGATIVE
        neg_candidates = assign_result.gt_inds == NEGATIVE
        num_images = pos_candidates.shape[0]
        device = pos_candidates.device
        pos_quota = int(self.num * self.pos_fraction)
        max_pos = torch.full((num_images,), pos_quota, device=device)
        pos_mask = random_subset(pos_candidates, max_pos, pos_quota)
        num_pos = pos_mask.sum(dim=1)
        max_neg = self.num - num_pos
        if self.neg_pos_ub >= 0:
            max_neg = torch.minimum(max_neg, self.neg_pos_ub * num_pos.clamp(min=1))
        neg_mask = random_subset(neg_candidates, max_neg, self.num)
        return SampleResult(pos_mask, neg_mask, assign_result, priors)
