import pytest
import torch
from torchvision.models.detection._utils import Matcher
from torchvision.ops import box_iou

from core.contracts import GTBatch, Priors
from core.errors import ConfigError
from core.models.assigners import MaxIoUAssigner
from core.models.box_ops import gt_prior_iou
from core.models.priors import AnchorGenerator

IMAGE = 128


def random_boxes(num, generator, size=IMAGE, min_side=8.0):
    xy = torch.rand(num, 2, generator=generator) * (size - min_side)
    wh = min_side + torch.rand(num, 2, generator=generator) * (size / 2)
    return torch.cat([xy, (xy + wh).clamp(max=size)], dim=1)


@pytest.fixture(scope="module")
def anchors():
    generator = AnchorGenerator(strides=[8, 16, 32])
    return Priors.from_levels(generator.grid_priors([(16, 16), (8, 8), (4, 4)]), [8, 16, 32])


def as_priors(boxes):
    """One level of ``(N, 4)`` box priors."""
    return Priors.from_levels([boxes], [1])


def torchvision_style(matches):
    """Our gt_inds convention -> torchvision Matcher's (-2 between, -1 below, i matched)."""
    return torch.where(matches > 0, matches - 1, torch.where(matches == 0, -1, -2))


def test_matches_torchvision_matcher_with_low_quality_matches(anchors):
    generator = torch.Generator().manual_seed(0)
    counts = [1, 4, 9, 0, 2]
    boxes = [random_boxes(n, generator) for n in counts]
    labels = [torch.randint(0, 3, (n,), generator=generator) for n in counts]
    gt = GTBatch.from_lists(boxes, labels)
    result = MaxIoUAssigner(0.5, 0.4, low_quality_gt="best").assign(anchors, gt)
    matcher = Matcher(0.5, 0.4, allow_low_quality_matches=True)
    assert result.gt_inds.shape == (len(counts), anchors.num_priors)
    for index, image_boxes in enumerate(boxes):
        if len(image_boxes) == 0:  # torchvision's Matcher refuses images without gts
            assert (result.gt_inds[index] == 0).all()
            continue
        expected = matcher(box_iou(image_boxes, anchors.boxes))
        assert torch.equal(torchvision_style(result.gt_inds[index]), expected)
        positive = expected >= 0
        assert torch.equal(result.labels[index][positive], labels[index][expected[positive]])
        assert (result.labels[index][~positive] == -1).all()


def test_low_quality_matches_give_every_gt_a_prior(anchors):
    # a tiny box overlaps no anchor by 0.4 or more: only low-quality matching makes it positive
    boxes = torch.tensor([[3.0, 3.0, 9.0, 7.0], [40.0, 40.0, 90.0, 100.0]])
    gt = GTBatch.from_lists([boxes], [torch.tensor([0, 1])])
    strict = MaxIoUAssigner(allow_low_quality_matches=False).assign(anchors, gt)
    assert not (strict.gt_inds == 1).any()
    result = MaxIoUAssigner(low_quality_gt="self").assign(anchors, gt)
    best_prior = box_iou(boxes, anchors.boxes).argmax(dim=1)
    assert result.gt_inds[0, best_prior[0]] == 1
    assert result.gt_inds[0, best_prior[1]] == 2


def test_min_pos_iou_limits_low_quality_matches(anchors):
    boxes = torch.tensor([[3.0, 3.0, 9.0, 7.0]])
    gt = GTBatch.from_lists([boxes], [torch.tensor([0])])
    result = MaxIoUAssigner(min_pos_iou=0.3).assign(anchors, gt)
    assert not result.pos_mask.any()


def test_gt_max_assign_all_false_takes_one_prior_per_gt():
    priors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [50, 50, 60, 60]])
    gt = GTBatch.from_lists([torch.tensor([[0.0, 0.0, 30.0, 30.0]])], [torch.tensor([2])])
    all_tied = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.05).assign(as_priors(priors), gt)
    assert all_tied.gt_inds.tolist() == [[1, 1, 0]]
    one = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.05, gt_max_assign_all=False).assign(
        as_priors(priors), gt
    )
    assert one.gt_inds.tolist() == [[1, -1, 0]]
    assert one.labels.tolist() == [[2, -1, -1]]


def test_ignore_regions_and_images_without_gt():
    priors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20, 20, 30, 30], [40, 40, 50, 50]])
    gt = GTBatch.from_lists(
        [torch.tensor([[40.0, 40.0, 50.0, 50.0]]), torch.zeros((0, 4))],
        [torch.tensor([1]), torch.zeros(0, dtype=torch.long)],
        [torch.tensor([[18.0, 18.0, 29.0, 29.0]]), torch.tensor([[0.0, 0.0, 6.0, 20.0]])],
    )
    result = MaxIoUAssigner(ignore_iof_thr=0.5).assign(as_priors(priors), gt)
    # image 0: prior 1 is 81% inside the ignore box; image 1 has no gt: negatives except prior 0
    assert result.gt_inds.tolist() == [[0, -1, 1], [-1, 0, 0]]
    assert result.num_gts.tolist() == [1, 0]
    without_ignore = MaxIoUAssigner(ignore_iof_thr=-1).assign(as_priors(priors), gt)
    assert without_ignore.gt_inds.tolist() == [[0, 0, 1], [0, 0, 0]]


def test_padding_gts_are_never_matched(anchors):
    generator = torch.Generator().manual_seed(3)
    boxes = [random_boxes(1, generator), random_boxes(6, generator)]
    gt = GTBatch.from_lists(
        boxes, [torch.zeros(1, dtype=torch.long), torch.ones(6, dtype=torch.long)]
    )
    result = MaxIoUAssigner().assign(anchors, gt)
    assert result.gt_inds[0].max() == 1  # image 0 has one real gt and five padding rows


def test_thresholds_are_checked():
    with pytest.raises(ConfigError, match="neg_iou_thr"):
        MaxIoUAssigner(pos_iou_thr=0.3, neg_iou_thr=0.5)


def test_per_image_priors_with_padding_match_each_image_alone():
    """Proposals per image (padded to one length) give each image the result of assigning
    its own proposals alone; padding priors are ignored."""
    generator = torch.Generator().manual_seed(7)
    lengths = [30, 18]
    proposals = [random_boxes(n, generator) for n in lengths]
    boxes = [random_boxes(3, generator), random_boxes(2, generator)]
    labels = [torch.tensor([0, 1, 2]), torch.tensor([1, 1])]
    padded = torch.zeros(2, 30, 4)
    valid = torch.zeros(2, 30, dtype=torch.bool)
    for image, (props, n) in enumerate(zip(proposals, lengths, strict=True)):
        padded[image, :n], valid[image, :n] = props, True
    priors = Priors(points=(padded[..., :2] + padded[..., 2:]) / 2, strides=torch.zeros(2, 30),
                    level_sizes=(30,), boxes=padded, valid=valid)
    assigner = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.3)
    batched = assigner.assign(priors, GTBatch.from_lists(boxes, labels))
    for image, n in enumerate(lengths):
        alone = assigner.assign(as_priors(proposals[image]),
                                GTBatch.from_lists([boxes[image]], [labels[image]]))
        assert torch.equal(batched.gt_inds[image, :n], alone.gt_inds[0])
        assert (batched.gt_inds[image, n:] == -1).all()


def test_matcher_overwrite_gives_the_same_assignment_and_otherwise_keeps_the_input(anchors):
    generator = torch.Generator().manual_seed(7)
    counts = [3, 0, 6]
    gt = GTBatch.from_lists([random_boxes(n, generator) for n in counts],
                            [torch.randint(0, 3, (n,), generator=generator) for n in counts])
    quality = gt_prior_iou(gt.boxes, anchors.boxes)
    excluded = torch.rand(len(counts), anchors.num_priors, generator=generator) < 0.1
    for low_quality_gt in ("self", "best"):
        assigner = MaxIoUAssigner(0.5, 0.4, low_quality_gt=low_quality_gt)
        kept = quality.clone()
        copied = assigner.matcher(quality, gt, excluded)
        assert torch.equal(quality, kept)
        overwritten = assigner.matcher(kept, gt, excluded, overwrite=True)
        assert torch.equal(copied.gt_inds, overwritten.gt_inds)
        assert torch.equal(copied.max_overlaps, overwritten.max_overlaps)
        assert torch.equal(copied.labels, overwritten.labels)


@pytest.mark.parametrize("seed", range(4))
def test_low_quality_matches_prior_by_prior_equal_the_full_comparison(anchors, monkeypatch,
                                                                      seed):
    """Low-quality matches checked for the few priors that can be a gt's best equal the
    check over every (gt, prior) pair, ties included (boxes on the anchor grid tie), and
    torchvision's Matcher."""
    from core.models.assigners import quality_matcher

    generator = torch.Generator().manual_seed(seed)
    counts = [3, 6, 0, 1]
    boxes = [random_boxes(n, generator) for n in counts]
    boxes[1][0] = torch.tensor([16.0, 16.0, 48.0, 48.0])  # on the grid: tied best anchors
    boxes[3][0] = torch.tensor([60.0, 60.0, 62.0, 61.0])  # tiny: a low best IoU
    gt = GTBatch.from_lists(boxes, [torch.zeros(n, dtype=torch.long) for n in counts])
    results = []
    for share in (0.0, 1.0):  # every prior by the full comparison / one by one
        monkeypatch.setattr(quality_matcher, "SPARSE_SHARE", share)
        results.append(MaxIoUAssigner(0.7, 0.3, low_quality_gt="best").assign(anchors, gt))
    assert torch.equal(results[0].gt_inds, results[1].gt_inds)
    matcher = Matcher(0.7, 0.3, allow_low_quality_matches=True)
    for index, image_boxes in enumerate(boxes):
        if len(image_boxes):
            expected = matcher(box_iou(image_boxes, anchors.boxes))
            assert torch.equal(torchvision_style(results[1].gt_inds[index]), expected)
