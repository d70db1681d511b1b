import pytest
import torch

from core.contracts import AssignResult, GTBatch, Priors
from core.errors import ConfigError
from core.models.samplers import PseudoSampler, RandomSampler, random_sampler
from core.models.samplers.random_sampler import _first_distinct_draws, _smallest_keys, random_subset

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


def argsort_subset(candidates, quota, keys):
    """Reference: rank every key of a row (ties in index order), keep the ``quota`` first."""
    keys = keys.masked_fill(~candidates, 2.0)
    rank = torch.empty_like(keys, dtype=torch.long)
    order = keys.argsort(dim=1, stable=True)
    rank.scatter_(1, order, torch.arange(keys.shape[1]).expand_as(order))
    return candidates & (rank < quota[:, None])


@pytest.mark.parametrize("coarse", [False, True])
def test_smallest_keys_match_a_full_ranking(monkeypatch, coarse):
    """The ``quota`` smallest keys (tied keys in index order), whatever the key ties."""
    draws = []
    real_rand = torch.rand

    def rand(*args, **kwargs):
        keys = real_rand(*args, **kwargs)
        keys = (keys * 8).floor() / 8 if coarse else keys  # coarse keys: many ties
        draws.append(keys)
        return keys

    monkeypatch.setattr(torch, "rand", rand)
    generator = torch.Generator().manual_seed(3)
    for _ in range(40):
        num = int(torch.randint(1, 500, (1,), generator=generator))
        candidates = torch.rand(3, num, generator=generator) < float(
            torch.rand(1, generator=generator))
        max_quota = int(torch.randint(1, 60, (1,), generator=generator))
        quota = torch.randint(0, max_quota + 1, (3,), generator=generator)
        got = _smallest_keys(candidates, quota, max_quota)
        assert torch.equal(got, argsort_subset(candidates, quota, draws[-1]))
        assert torch.equal(got.sum(dim=1), torch.minimum(candidates.sum(dim=1), quota))


def test_smallest_keys_ties_in_index_order(monkeypatch):
    keys = torch.tensor([[0.5] * 6, [0.1, 0.5, 0.5, 0.2, 0.5, 0.5]])
    monkeypatch.setattr(torch, "rand", lambda shape, device=None: keys.clone())
    candidates = torch.ones(2, 6, dtype=torch.bool)
    got = random_subset(candidates, torch.tensor([2, 3]), 4)
    assert got.tolist() == [[True, True, False, False, False, False],
                            [True, True, False, True, False, False]]


def test_all_candidates_fit_without_a_draw():
    few = torch.zeros(2, 50, dtype=torch.bool)
    few[:, :3] = True
    torch.manual_seed(0)
    assert torch.equal(random_subset(few, torch.tensor([5, 5]), 5), few)
    after = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), after)  # nothing was drawn


def test_first_distinct_draws_by_hand(monkeypatch):
    """Draws 1, 2, 2, 0, 3: 1 is no candidate, the second 2 repeats the first, so a quota of
    2 takes 2 and 0; the second row's quota of 3 takes 4, 3 and 1."""
    candidates = torch.tensor([[True, False, True, True, True],
                               [False, True, True, True, True]])
    drawn = torch.tensor([[1, 2, 2, 0, 3], [4, 4, 3, 0, 1]])
    monkeypatch.setattr(torch, "randint", lambda high, size, device=None: drawn)
    got = _first_distinct_draws(candidates, torch.tensor([2, 3]), 3)
    assert got.tolist() == [[True, False, True, False, False],
                            [False, True, False, True, True]]
    # too few distinct candidates among the draws: the caller ranks keys instead
    assert _first_distinct_draws(candidates, torch.tensor([4, 4]), 3) is None
    monkeypatch.undo()
    torch.manual_seed(0)
    monkeypatch.setattr(torch, "randint", lambda high, size, device=None: drawn)
    wide = torch.ones(2, 40, dtype=torch.bool)
    assert random_subset(wide, torch.tensor([4, 4]), 4).sum(dim=1).tolist() == [4, 4]


def test_dense_rows_are_sampled_uniformly_by_draws(monkeypatch):
    """Rows with many candidates per wanted entry take the draw path; every candidate is
    chosen about equally often, at any index, and never a non-candidate."""
    calls = []
    real = random_sampler._first_distinct_draws
    monkeypatch.setattr(random_sampler, "_first_distinct_draws",
                        lambda *args: calls.append(1) or real(*args))
    torch.manual_seed(7)
    candidates = torch.ones(400, 1000, dtype=torch.bool)
    candidates[:, ::10] = False  # 900 candidates per row, 30 wanted: the draw path
    quota = torch.full((400,), 30)
    counts = torch.zeros(1000)
    for _ in range(10):
        chosen = random_subset(candidates, quota, 30)
        assert chosen.sum(dim=1).eq(30).all() and not (chosen & ~candidates).any()
        counts += chosen.sum(dim=0)
    assert len(calls) == 10
    expected = 10 * 400 * 30 / 900  # 133.3 per candidate
    real_counts = counts[candidates[0]]
    assert real_counts.min() > expected / 2 and real_counts.max() < expected * 1.5
    low, high = real_counts[:450].mean(), real_counts[450:].mean()
    assert abs(low - high) < 0.03 * expected
