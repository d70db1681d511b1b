"""SimOTA and DynamicSoftLabel assigners: hand-computed cases, and equality with per-box
reference loops on random batches."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from core.contracts import NEGATIVE, GTBatch, Predictions, Priors
from core.errors import ConfigError
from core.models.assigners import DynamicSoftLabelAssigner, SimOTAAssigner
from core.models.assigners.dynamic_k import dynamic_ks, resolve_claims
from core.models.priors import PointGenerator

#: Predicted box far from everything (IoU 0 with every gt of the cases).
FAR = [100.0, 100.0, 110.0, 110.0]
SEEDS = [0, 1, 2, 3, 4]


def row_of_points() -> Priors:
    """Eight stride-8 points on one row: x = 4, 12, ..., 60 and y = 4."""
    generator = PointGenerator(strides=[8], offset=0.5)
    return Priors.from_levels(generator.grid_priors([(1, 8)]), generator.strides)


def predictions(boxes: list[list[list[float]]], scores: list[list[float]]) -> Predictions:
    """Per image the first predicted boxes (``FAR`` for the rest of the 8) and class scores
    shared by the 8 priors of the image."""
    rows = [torch.tensor(image_boxes + [FAR] * (8 - len(image_boxes))) for image_boxes in boxes]
    score_rows = torch.tensor(scores)[:, None, :].expand(-1, 8, -1).clone()
    return Predictions(score_rows, torch.stack(rows))


def random_batch(seed: int, num_classes: int = 3) -> tuple[Priors, GTBatch, Predictions]:
    """Points of a 64 x 64 input on strides 8 and 16 (80 priors), 4 images holding 3, 0, 7
    and 1 boxes, predicted boxes jittered around the priors and random scores."""
    generator = torch.Generator().manual_seed(seed)
    points = PointGenerator(strides=[8, 16], offset=0.5)
    priors = Priors.from_levels(points.grid_priors([(8, 8), (4, 4)]), points.strides)
    counts = [3, 0, 7, 1]
    boxes, labels = [], []
    for count in counts:
        xy = torch.rand(count, 2, generator=generator) * 48
        wh = 6 + torch.rand(count, 2, generator=generator) * 30
        boxes.append(torch.cat([xy, (xy + wh).clamp(max=64)], dim=1))
        labels.append(torch.randint(num_classes, (count,), generator=generator))
    gt = GTBatch.from_lists(boxes, labels)
    num_images, num_priors = len(counts), priors.num_priors
    centre = priors.points[None].expand(num_images, -1, -1)
    strides = priors.strides[None, :, None]
    half = strides * (0.5 + 2 * torch.rand((num_images, num_priors, 2), generator=generator))
    shift = strides * (torch.rand((num_images, num_priors, 2), generator=generator) - 0.5)
    pred_boxes = torch.cat([centre + shift - half, centre + shift + half], dim=-1)
    scores = torch.rand((num_images, num_priors, num_classes), generator=generator)
    return priors, gt, Predictions(scores, pred_boxes)


def reference_matching(costs: list[torch.Tensor], ious: list[torch.Tensor],
                       candidate: torch.Tensor, topk: int) -> torch.Tensor:
    """One image in per-box loops: ``gt_inds (N,)`` from per-box ``(N,)`` costs and IoUs.

    Each box takes its ``max(1, int(sum of top-k candidate IoUs))`` cheapest candidates; a
    prior taken twice keeps the taking box of lowest cost.
    """
    best_cost = [math.inf] * len(candidate)
    gt_inds = [NEGATIVE] * len(candidate)
    chosen_from = candidate.nonzero().flatten()
    for box, (cost, iou) in enumerate(zip(costs, ious, strict=True)):
        if len(chosen_from) == 0:
            continue
        top = iou[chosen_from].sort(descending=True).values[:topk]
        k = max(1, int(top.sum()))
        for prior in chosen_from[cost[chosen_from].argsort()][:k].tolist():
            if cost[prior].item() < best_cost[prior]:
                best_cost[prior] = cost[prior].item()
                gt_inds[prior] = box + 1
    return torch.tensor(gt_inds)


def check_against_reference(result, gt: GTBatch, pred: Predictions, reference) -> None:
    for image in range(gt.valid.shape[0]):
        count = int(gt.num_gts[image])
        expected = reference(gt.boxes[image, :count], gt.labels[image, :count], image)
        assert torch.equal(result.gt_inds[image], expected), image
        positive = expected > 0
        if count:
            iou = box_iou(gt.boxes[image, :count], pred.boxes[image])
            matched = iou[expected[positive] - 1, positive.nonzero().flatten()]
            assert torch.allclose(result.quality[image][positive], matched)
            labels = gt.labels[image, expected[positive] - 1]
            assert torch.equal(result.labels[image][positive], labels)
        assert (result.quality[image][~positive] == 0).all()
        assert (result.labels[image][~positive] == -1).all()


# ---- shared steps -----------------------------------------------------------------------


def test_dynamic_k_sums_the_top_candidate_ious():
    """Box 0: candidate IoUs 0.9, 0.9, 0.9 (the 0.95 prior is no candidate): top-10 sum 2.7
    -> k = 2, top-2 sum 1.8 -> k = 1. Box 1 overlaps nothing -> k = max(1, 0) = 1."""
    iou = torch.tensor([[[0.9, 0.9, 0.9, 0.95], [0.0, 0.0, 0.0, 0.0]]])
    candidate = torch.tensor([[True, True, True, False]])
    assert dynamic_ks(iou, candidate, 10).tolist() == [[2, 1]]
    assert dynamic_ks(iou, candidate, 2).tolist() == [[1, 1]]


def test_a_prior_claimed_twice_goes_to_the_cheaper_claiming_box():
    """Prior 1 is chosen by boxes 0 (cost 5) and 1 (cost 2) -> box 1; prior 0 is chosen only
    by box 0 although box 1 is cheaper there (cost 1): it stays with box 0."""
    cost = torch.tensor([[[3.0, 5.0, 9.0], [1.0, 2.0, 9.0]]])
    chosen = torch.tensor([[[True, True, False], [False, True, False]]])
    assert resolve_claims(cost, chosen).tolist() == [[1, 2, 0]]


# ---- SimOTA -----------------------------------------------------------------------------


def test_sim_ota_hand_computed_case():
    """Points x = 4, 12, ..., 60 at y = 4, stride 8, centre squares of half-size 20.

    Image 0: the same box [0, 0, 16, 8] twice, class 1 then class 0. Candidates: p0, p1
    (inside the box and its square) and p2 (x = 20: only in the square, |20 - 8| < 20; p3 at
    |28 - 8| = 20 is not). Predicted boxes give IoUs 1, 0.5, 0.5 -> k = int(2.0) = 2; p2
    pays 1e5 -> both boxes pick p0, p1. Scores 0.9 (class 0), 0.2 (class 1): the class-0
    box is cheaper (-ln 0.9 - ln 0.8 < -ln 0.1 - ln 0.2), so both priors go to box 2.
    Image 1: a 2 px box [41, 1, 43, 3] holds no point; p3..p7 (|x - 42| < 20) are candidates
    through its square only, p5's prediction matches it (IoU 1, the others 0) -> k = 1: p5.
    Image 2: no box -> all negative.
    """
    priors = row_of_points()
    box = [0.0, 0.0, 16.0, 8.0]
    gt = GTBatch.from_lists(
        [torch.tensor([box, box]), torch.tensor([[41.0, 1, 43, 3]]), torch.zeros((0, 4))],
        [torch.tensor([1, 0]), torch.tensor([1]), torch.zeros(0, dtype=torch.long)])
    pred = predictions(
        [[box, [0.0, 0, 8, 8], [8.0, 0, 16, 8]], [FAR] * 5 + [[41.0, 1, 43, 3]], []],
        [[0.9, 0.2], [0.9, 0.2], [0.9, 0.2]])
    assigner = SimOTAAssigner()
    in_box, in_center = assigner.regions(priors.points, priors.strides, gt)
    assert in_box[0, 0].tolist() == [True, True] + [False] * 6
    assert in_center[0, 0].tolist() == [True, True, True] + [False] * 5
    assert in_center[1, 0].tolist() == [False] * 3 + [True] * 5
    result = assigner.assign(priors, gt, pred)
    assert result.gt_inds.tolist() == [[2, 2, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1, 0, 0],
                                       [0] * 8]
    assert result.labels.tolist() == [[0, 0] + [-1] * 6, [-1] * 5 + [1, -1, -1], [-1] * 8]
    assert result.quality.tolist() == [[1.0, 0.5] + [0.0] * 6, [0.0] * 5 + [1.0, 0, 0],
                                       [0.0] * 8]
    assert result.num_gts.tolist() == [2, 1, 0]


def reference_sim_ota(priors: Priors, pred: Predictions, radius: float = 2.5):
    points, strides = priors.points, priors.strides
    x, y = points[:, 0], points[:, 1]

    def reference(boxes, labels, image):
        scores, pred_boxes = pred.scores[image], pred.boxes[image]
        regions = []
        for box in boxes:
            in_box = (x > box[0]) & (y > box[1]) & (x < box[2]) & (y < box[3])
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            in_center = ((x - cx).abs() < radius * strides) & ((y - cy).abs() < radius * strides)
            regions.append((in_box, in_center))
        candidate = torch.zeros(len(points), dtype=torch.bool)
        for in_box, in_center in regions:
            candidate |= in_box | in_center
        costs, ious = [], []
        for box, label, (in_box, in_center) in zip(boxes, labels, regions, strict=True):
            iou = box_iou(box[None], pred_boxes)[0]
            one_hot = F.one_hot(label, scores.shape[-1]).float().expand_as(scores)
            cls = F.binary_cross_entropy(scores, one_hot, reduction="none").sum(dim=-1)
            outside = (~(in_box & in_center)).float()
            costs.append(cls + 3.0 * -torch.log(iou + 1e-7) + 1e5 * outside)
            ious.append(iou)
        return reference_matching(costs, ious, candidate, 10)

    return reference


@pytest.mark.parametrize("seed", SEEDS)
def test_sim_ota_matches_per_box_reference(seed):
    priors, gt, pred = random_batch(seed)
    result = SimOTAAssigner().assign(priors, gt, pred)
    check_against_reference(result, gt, pred, reference_sim_ota(priors, pred))
    assert result.pos_mask.sum(dim=1)[[0, 2, 3]].gt(0).all()
    assert not result.pos_mask[1].any()


def test_sim_ota_bad_input():
    priors, gt, pred = random_batch(0)
    with pytest.raises(ConfigError, match="predictions"):
        SimOTAAssigner().assign(priors, gt, None)
    with pytest.raises(ConfigError, match="center_radius"):
        SimOTAAssigner(center_radius=0)
    empty = GTBatch.from_lists([torch.zeros((0, 4))] * 4, [torch.zeros(0, dtype=torch.long)] * 4)
    result = SimOTAAssigner().assign(priors, empty, pred)
    assert result.gt_inds.shape == (4, 80) and not result.gt_inds.any()


# ---- DynamicSoftLabel -------------------------------------------------------------------


def test_center_prior_values():
    """``10 ** (d / stride - 3)``: at the centre 1e-3, one stride away 1e-2, three strides
    away 1 (points (4, 4), (12, 4), (28, 4) against a box centred at (4, 4), stride 8)."""
    points = torch.tensor([[4.0, 4], [12, 4], [28, 4]])
    gt = GTBatch.from_lists([torch.tensor([[0.0, 0, 8, 8]])], [torch.tensor([0])])
    prior = DynamicSoftLabelAssigner().center_prior(points, torch.full((3,), 8.0), gt)
    assert prior[0, 0].tolist() == pytest.approx([1e-3, 1e-2, 1.0])


def test_dynamic_soft_label_hand_computed_case():
    """Points x = 4, 12, ..., 60 at y = 4, stride 8.

    Image 0: box [0, 0, 16, 8] holds p0 and p1 strictly; p2 (x = 20) is outside although its
    prediction matches the box (IoU 1). Candidate IoUs 1 and 0.5 -> k = int(1.5) = 1 (with p2
    it would be 2) -> p0.
    Image 1: box [4, 0, 20, 8] twice, class 1 then class 0: p0 (x = 4) and p2 (x = 20) lie on
    its border, only p1 is a candidate; both boxes pick it. Class-0 cost
    -ln(0.9) * 0.1^2 = 0.001 beats class-1 -ln(0.2) * 0.8^2 = 1.03 -> box 2.
    Image 2: no box -> all negative.
    """
    priors = row_of_points()
    box, shifted = [0.0, 0, 16, 8], [4.0, 0, 20, 8]
    gt = GTBatch.from_lists(
        [torch.tensor([box]), torch.tensor([shifted, shifted]), torch.zeros((0, 4))],
        [torch.tensor([0]), torch.tensor([1, 0]), torch.zeros(0, dtype=torch.long)])
    pred = predictions([[box, [0.0, 0, 8, 8], box], [shifted] * 3, []],
                       [[0.9, 0.2], [0.9, 0.2], [0.9, 0.2]])
    result = DynamicSoftLabelAssigner().assign(priors, gt, pred)
    assert result.gt_inds.tolist() == [[1] + [0] * 7, [0, 2] + [0] * 6, [0] * 8]
    assert result.labels.tolist() == [[0] + [-1] * 7, [-1, 0] + [-1] * 6, [-1] * 8]
    assert result.quality.tolist() == [[1.0] + [0.0] * 7, [0.0, 1.0] + [0.0] * 6, [0.0] * 8]


def reference_dynamic_soft_label(priors: Priors, pred: Predictions):
    """Per box; the class cost from probabilities (BCE(p, IoU) = BCEWithLogits(logit p, IoU))."""
    points, strides = priors.points, priors.strides
    x, y = points[:, 0], points[:, 1]

    def reference(boxes, labels, image):
        scores, pred_boxes = pred.scores[image], pred.boxes[image]
        candidate = torch.zeros(len(points), dtype=torch.bool)
        for box in boxes:
            candidate |= (x > box[0]) & (y > box[1]) & (x < box[2]) & (y < box[3])
        costs, ious = [], []
        for box, label in zip(boxes, labels, strict=True):
            iou = box_iou(box[None], pred_boxes)[0]
            p = scores[:, label]
            cls = F.binary_cross_entropy(p, iou, reduction="none") * (iou - p).abs() ** 2
            centre = (box[:2] + box[2:]) / 2
            distance = ((points - centre) ** 2).sum(dim=-1).sqrt() / strides
            costs.append(cls + 3.0 * -torch.log(iou + 1e-7) + 10 ** (distance - 3.0))
            ious.append(iou)
        return reference_matching(costs, ious, candidate, 13)

    return reference


@pytest.mark.parametrize("seed", SEEDS)
def test_dynamic_soft_label_matches_per_box_reference(seed):
    priors, gt, pred = random_batch(seed)
    result = DynamicSoftLabelAssigner().assign(priors, gt, pred)
    check_against_reference(result, gt, pred, reference_dynamic_soft_label(priors, pred))
    assert not result.pos_mask[1].any()


def test_dynamic_soft_label_positives_lie_inside_some_box():
    """Candidates are the priors inside any box of the image (not only their own box's)."""
    priors, gt, pred = random_batch(7)
    result = DynamicSoftLabelAssigner().assign(priors, gt, pred)
    points = priors.points[None, None]  # (1, 1, N, 2)
    boxes = gt.boxes[:, :, None]  # (B, M, 1, 4)
    inside = ((points > boxes[..., :2]) & (points < boxes[..., 2:])).all(dim=-1)
    inside_any = (inside & gt.valid[:, :, None]).any(dim=1)  # (B, N)
    assert result.pos_mask.any() and not (result.pos_mask & ~inside_any).any()
    with pytest.raises(ConfigError, match="candidate_topk"):
        DynamicSoftLabelAssigner(candidate_topk=0)
