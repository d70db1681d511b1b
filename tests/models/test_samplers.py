import pytest
import torch

from core.contracts import AssignResult, GTBatch, Priors
from core.errors import ConfigError
from core.models.samplers import PseudoSampler, RandomSampler

NUM_PRIORS = 200


def make_assign(num_pos=(30, 3)):
    gt_inds = torch.zeros(len(num_pos), NUM_PRIORS, dtype=torch.long)
    for image, count in enumerate(num_pos):
        gt_inds[image, :count] = 1
        gt_inds[image, -10:] = -1
    labels = torch.where(gt_inds > 0, 0, -1)
    return AssignResult(gt_inds, torch.zeros(gt_inds.shape), labels, torch.ones(len(num_pos)))


def zero_priors():
    """``NUM_PRIORS`` degenerate box priors on one level."""
    return Priors.from_levels([torch.zeros(NUM_PRIORS, 4)], [8])


def gt_batch(images=2):
    return GTBatch.from_lists(
        [torch.tensor([[0.0, 0.0, 5.0, 5.0]])] * images, [torch.tensor([0])] * images
    )


def test_pseudo_sampler_keeps_everything():
    assign = make_assign()
    result = PseudoSampler().sample(assign, zero_priors(), gt_batch())
    assert torch.equal(result.pos_mask, assign.gt_inds > 0)
    assert torch.equal(result.neg_mask, assign.gt_inds == 0)
    assert result.num_pos == 33 and result.num_neg == 2 * (NUM_PRIORS - 10) - 33


def test_random_sampler_quota_per_image():
    torch.manual_seed(0)
    result = RandomSampler(num=40, pos_fraction=0.25).sample(
        make_assign(), zero_priors(), gt_batch()
    )
    assert result.pos_mask.sum(dim=1).tolist() == [10, 3]
    assert result.neg_mask.sum(dim=1).tolist() == [30, 37]
    assert not (result.pos_mask & result.neg_mask).any()
    assign = make_assign()
    assert (assign.gt_inds[result.pos_mask] > 0).all()
    assert (assign.gt_inds[result.neg_mask] == 0).all()


def test_random_sampler_negative_bound_and_determinism():
    priors = zero_priors()
    sampler = RandomSampler(num=40, pos_fraction=0.25, neg_pos_ub=2)
    torch.manual_seed(5)
    first = sampler.sample(make_assign(), priors, gt_batch())
    assert first.neg_mask.sum(dim=1).tolist() == [20, 6]
    torch.manual_seed(5)
    second = sampler.sample(make_assign(), priors, gt_batch())
    assert torch.equal(first.pos_mask, second.pos_mask)
    assert torch.equal(first.neg_mask, second.neg_mask)


def test_random_sampler_adds_gts_as_proposals():
    gt = GTBatch.from_lists(
        [torch.tensor([[0.0, 0.0, 5.0, 5.0], [1, 1, 9, 9]]), torch.tensor([[2.0, 2.0, 6.0, 6.0]])],
        [torch.tensor([1, 2]), torch.tensor([0])],
    )
    assign = make_assign(num_pos=(0, 0))
    result = RandomSampler(num=20, add_gt_as_proposals=True).sample(
        assign, zero_priors(), gt
    )
    assert result.priors.boxes.shape == (2, NUM_PRIORS + 2, 4)
    assert torch.equal(result.priors.boxes[1, 0], gt.boxes[1, 0])
    # image 1 has one gt: its second gt slot is padding, not a proposal
    assert result.priors.valid[1].tolist() == [True, False] + [True] * NUM_PRIORS
    assert result.priors.level_sizes == (NUM_PRIORS + 2,)
    assert result.pos_mask[0, :2].all() and result.pos_mask[1, 0] and not result.pos_mask[1, 1]
    assert result.assign_result.labels[0, :2].tolist() == [1, 2]


def test_random_sampler_checks_arguments():
    with pytest.raises(ConfigError, match="pos_fraction"):
        RandomSampler(pos_fraction=1.5)
