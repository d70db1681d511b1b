"""Assigner statistics on crafted assignments, and their place in a dense head's loss dict."""

import torch

from core.contracts import AssignResult, GTBatch, Priors, SampleResult
from core.engine.losses import sum_losses
from core.models.heads.assign_stats import assignment_stats


def sampling_of(gt_inds: list[list[int]], pos_mask: list[list[bool]] | None = None
                ) -> SampleResult:
    inds = torch.tensor(gt_inds)
    result = AssignResult(inds, torch.zeros(inds.shape), torch.full_like(inds, -1),
                          torch.zeros(len(inds), dtype=torch.long))
    pos = result.pos_mask if pos_mask is None else torch.tensor(pos_mask)
    priors = Priors(torch.zeros(inds.shape[1], 2), torch.ones(inds.shape[1]), (4, 2))
    return SampleResult(pos, ~pos & result.neg_mask, result, priors)


def boxes(count: int) -> torch.Tensor:
    return torch.tensor([[0.0, 0, 10, 10]] * count).reshape(-1, 4)


def test_statistics_of_a_crafted_assignment():
    """Image 0 has 3 boxes: box 1 gets priors 0, 1 (level 0) and 4 (level 1), box 2 gets
    prior 3, box 3 nothing. Image 1 has 1 box with prior 5 (level 1); its prior 2 is ignored
    (-1) and does not count. Per box: 3, 1, 0, 1 -> mean 1.25, min 0, 1 of 4 without."""
    sampling = sampling_of([[1, 1, 0, 2, 1, 0], [0, 0, -1, 0, 0, 1]])
    gt = GTBatch.from_lists([boxes(3), boxes(1)], [torch.zeros(3), torch.zeros(1)])
    stats = assignment_stats(sampling, gt, (4, 2))
    assert {k: v.item() for k, v in stats.items()} == {
        "assign/pos_per_gt_mean": 1.25, "assign/pos_per_gt_min": 0.0,
        "assign/gt_without_pos": 0.25, "assign/num_pos_level0": 3.0,
        "assign/num_pos_level1": 2.0}


def test_sampled_positives_count_and_padding_boxes_do_not():
    """A sampler dropped prior 1 (assigned to box 1): box 1 keeps 1 positive. Image 1 has no
    box: its padding row counts nowhere."""
    sampling = sampling_of([[1, 1, 2, 0, 0, 0], [0] * 6],
                           [[True, False, True, False, False, False], [False] * 6])
    gt = GTBatch.from_lists([boxes(2), boxes(0)], [torch.zeros(2), torch.zeros(0)])
    stats = assignment_stats(sampling, gt, (4, 2))
    assert stats["assign/pos_per_gt_mean"].item() == 1.0
    assert stats["assign/pos_per_gt_min"].item() == 1.0
    assert stats["assign/gt_without_pos"].item() == 0.0
    assert stats["assign/num_pos_level0"].item() == 2.0


def test_a_batch_without_boxes_reports_finite_zeros():
    sampling = sampling_of([[0] * 6, [0] * 6])
    gt = GTBatch.from_lists([boxes(0), boxes(0)], [torch.zeros(0), torch.zeros(0)])
    stats = assignment_stats(sampling, gt, (4, 2))
    assert all(v.item() == 0.0 and torch.isfinite(v) for v in stats.values())


def test_statistics_are_logged_but_not_summed_into_the_loss():
    sampling = sampling_of([[1, 1, 0, 2, 1, 0], [0, 0, -1, 0, 0, 1]])
    gt = GTBatch.from_lists([boxes(3), boxes(1)], [torch.zeros(3), torch.zeros(1)])
    losses = {"loss_cls": torch.tensor(2.0), "num_pos": torch.tensor(5.0),
              **assignment_stats(sampling, gt, (4, 2))}
    total, terms = sum_losses(losses)
    assert total.item() == 2.0
    assert terms["assign/pos_per_gt_mean"].item() == 1.25
