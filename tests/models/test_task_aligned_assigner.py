"""TaskAlignedAssigner: hand-computed cases and a per-box python reference on random inputs."""

import math

import pytest
import torch

from core.contracts import GTBatch, Predictions, Priors
from core.errors import ConfigError
from core.models.assigners import TaskAlignedAssigner
from core.models.priors import PointGenerator

BOX = [0.0, 0.0, 40.0, 40.0]


def point_priors(points, stride=8.0):
    points = torch.tensor(points, dtype=torch.float32)
    return Priors(points=points, strides=torch.full((len(points),), stride),
                  level_sizes=(len(points),))


def direct_ciou(a, b):
    """CIoU of two xyxy boxes from the formula (IoU - rho^2 / c^2 - alpha v)."""
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    iou = inter / (area_a + area_b - inter)
    rho2 = ((a[0] + a[2] - b[0] - b[2]) / 2) ** 2 + ((a[1] + a[3] - b[1] - b[3]) / 2) ** 2
    c2 = (max(a[2], b[2]) - min(a[0], b[0])) ** 2 + (max(a[3], b[3]) - min(a[1], b[1])) ** 2
    v = 4 / math.pi ** 2 * (math.atan((a[2] - a[0]) / (a[3] - a[1]))
                            - math.atan((b[2] - b[0]) / (b[3] - b[1]))) ** 2
    alpha = v / (1 - iou + v) if v > 0 else 0.0
    return iou - rho2 / c2 - alpha * v


def test_hand_computed_soft_targets():
    """One box [0, 0, 40, 40] of class 0; priors at (10, 10), (30, 30), (50, 50), (20, 20).

    p2 is outside. Predicted boxes: the gt box for p0 and p3 (CIoU 1), [0, 0, 40, 20] for p1:
    IoU 1/2, rho^2 / c^2 = 100 / 3200, v = 4/pi^2 (atan 1 - atan 2)^2, so CIoU 0.46550.
    Scores 0.81, 0.64, 0.9, 0.04 with alpha 0.5, beta 1: align 0.9, 0.8 * 0.46550 = 0.37240,
    -, 0.2. Top 2: p0 and p1. Soft targets align * max CIoU (1) / max align (0.9):
    1.0 and 0.41378.
    """
    ciou = 0.5 - 100 / 3200
    v = 4 / math.pi ** 2 * (math.atan(1.0) - math.atan(2.0)) ** 2
    ciou -= v / (0.5 + v) * v
    assert ciou == pytest.approx(direct_ciou(BOX, [0, 0, 40, 20]))
    priors = point_priors([[10, 10], [30, 30], [50, 50], [20, 20]])
    gt = GTBatch.from_lists([torch.tensor([BOX])], [torch.tensor([0])])
    scores = torch.tensor([[[0.81, 0.1], [0.64, 0.1], [0.9, 0.1], [0.04, 0.1]]])
    boxes = torch.tensor([[BOX, [0, 0, 40, 20], BOX, BOX]])
    result = TaskAlignedAssigner(topk=2, alpha=0.5, beta=1.0).assign(
        priors, gt, Predictions(scores, boxes))
    assert result.gt_inds.tolist() == [[1, 1, 0, 0]]
    assert result.labels.tolist() == [[0, 0, -1, -1]]
    assert result.quality[0].tolist() == pytest.approx([1.0, 0.8 * ciou / 0.9, 0, 0], abs=1e-6)
    assert result.max_overlaps[0].tolist() == pytest.approx([1.0, ciou, 0.0, 1.0], abs=1e-6)


def test_ties_go_to_the_lower_prior_index():
    """Four identical candidates (same score, same box): top 2 are the first two."""
    priors = point_priors([[10, 10], [30, 30], [20, 20], [25, 15]])
    gt = GTBatch.from_lists([torch.tensor([BOX])], [torch.tensor([1])])
    pred = Predictions(torch.full((1, 4, 2), 0.5), torch.tensor([[BOX] * 4]))
    result = TaskAlignedAssigner(topk=2).assign(priors, gt, pred)
    assert result.gt_inds.tolist() == [[1, 1, 0, 0]]
    assert result.quality[0].tolist() == pytest.approx([1.0, 1.0, 0, 0])


def test_prior_claimed_twice_goes_to_the_higher_ciou():
    """Boxes A = [0, 0, 40, 40] and B = [20, 0, 60, 40] both contain p1 (30, 20); p1's
    predicted box is B, so its CIoU with B (1) beats that with A. p0 (10, 20) is only in A,
    p2 (50, 20) only in B. A keeps p0 alone: its soft target is align(A, p0) * CIoU / align,
    i.e. the CIoU of p0's box with A (1 here)."""
    a, b = BOX, [20.0, 0.0, 60.0, 40.0]
    priors = point_priors([[10, 20], [30, 20], [50, 20]])
    gt = GTBatch.from_lists([torch.tensor([a, b])], [torch.tensor([0, 0])])
    scores = torch.tensor([[[0.25], [1.0], [0.49]]])
    boxes = torch.tensor([[a, b, b]])
    result = TaskAlignedAssigner(topk=3, alpha=0.5, beta=6.0).assign(
        priors, gt, Predictions(scores, boxes))
    assert result.gt_inds.tolist() == [[1, 2, 2]]
    # B: align p1 = 1, p2 = 0.7 (both CIoU 1) -> soft targets 1 and 0.7
    assert result.quality[0].tolist() == pytest.approx([1.0, 1.0, 0.7], abs=1e-6)


def test_image_without_boxes_and_batch_without_boxes():
    priors = point_priors([[10, 10], [30, 30]])
    gt = GTBatch.from_lists([torch.tensor([BOX]), torch.zeros((0, 4))],
                            [torch.tensor([0]), torch.zeros(0, dtype=torch.long)])
    pred = Predictions(torch.full((2, 2, 1), 0.5), torch.tensor([[BOX] * 2] * 2))
    result = TaskAlignedAssigner().assign(priors, gt, pred)
    assert result.gt_inds.tolist() == [[1, 1], [0, 0]]
    assert result.quality[1].tolist() == [0.0, 0.0]
    assert result.num_gts.tolist() == [1, 0]
    empty = GTBatch.from_lists([torch.zeros((0, 4))] * 2, [torch.zeros(0, dtype=torch.long)] * 2)
    result = TaskAlignedAssigner().assign(priors, empty, pred)
    assert result.gt_inds.tolist() == [[0, 0], [0, 0]]
    assert result.quality.tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_small_box_enlargement_gives_tiny_boxes_candidates():
    """A 4 px box between the stride-8 centres (4, 4) and (12, 4) has no candidate; enlarged
    to 16 px around its centre (8, 4) for the test, it contains both."""
    priors = point_priors([[4, 4], [12, 4], [28, 4]])
    tiny = [6.0, 2.0, 10.0, 6.0]
    gt = GTBatch.from_lists([torch.tensor([tiny])], [torch.tensor([0])])
    pred = Predictions(torch.full((1, 3, 1), 0.5), torch.tensor([[tiny] * 3]))
    assert TaskAlignedAssigner().assign(priors, gt, pred).gt_inds.tolist() == [[0, 0, 0]]
    enlarged = TaskAlignedAssigner(small_box_size=16.0).assign(priors, gt, pred)
    assert enlarged.gt_inds.tolist() == [[1, 1, 0]]


def test_bad_arguments():
    with pytest.raises(ConfigError, match="topk"):
        TaskAlignedAssigner(topk=0)
    with pytest.raises(ConfigError, match="pred"):
        TaskAlignedAssigner().assign(point_priors([[1, 1]]), GTBatch.from_lists(
            [torch.tensor([BOX])], [torch.tensor([0])]))


def reference_assign(points, boxes, labels, scores, pred_boxes, topk, alpha, beta, eps):
    """Plain loops over the boxes of one image: gt_inds ``(N,)`` and soft targets ``(N,)``."""
    num_priors = len(points)
    claims, ciou, align = {}, {}, {}
    for m, box in enumerate(boxes.tolist()):
        cands = []
        for n, (x, y) in enumerate(points.tolist()):
            if min(x - box[0], y - box[1], box[2] - x, box[3] - y) > 1e-9:
                value = max(direct_ciou(box, pred_boxes[n].tolist()), 0.0)
                ciou[m, n] = value
                align[m, n] = float(scores[n, labels[m]]) ** alpha * value ** beta
                cands.append(n)
        cands.sort(key=lambda n, m=m: (-align[m, n], n))
        claims[m] = set(cands[:topk])
    gt_inds = [0] * num_priors
    for n in range(num_priors):
        claimants = [m for m in claims if n in claims[m]]
        if claimants:
            gt_inds[n] = max(claimants, key=lambda m, n=n: (ciou[m, n], -m)) + 1
    quality = [0.0] * num_priors
    for m in range(len(boxes)):
        pos = [n for n in range(num_priors) if gt_inds[n] == m + 1]
        if not pos:
            continue
        max_align = max(align[m, n] for n in pos)
        max_ciou = max(ciou[m, n] for n in pos)
        for n in pos:
            quality[n] = align[m, n] * max_ciou / (max_align + eps)
    return gt_inds, quality


def random_boxes(generator, count, size):
    xy = torch.rand(count, 2, generator=generator) * size * 0.8
    wh = torch.rand(count, 2, generator=generator) * size * 0.4 + 4
    return torch.cat([xy, xy + wh], dim=1)


def test_matches_a_per_box_reference_on_random_inputs():
    generator = torch.Generator().manual_seed(0)
    size, num_classes = 64, 3
    levels = PointGenerator(strides=(8, 16)).grid_priors([(8, 8), (4, 4)])
    priors = Priors.from_levels(levels, [8, 16])
    counts = [5, 0, 3]
    boxes = [random_boxes(generator, c, size) for c in counts]
    labels = [torch.randint(num_classes, (c,), generator=generator) for c in counts]
    gt = GTBatch.from_lists(boxes, labels)
    num_images, num_priors = len(counts), priors.num_priors
    scores = torch.rand(num_images, num_priors, num_classes, generator=generator)
    # predicted boxes around the priors so that CIoUs spread over [0, 1]
    half = torch.rand(num_images, num_priors, 2, generator=generator) * 20 + 2
    shift = (torch.rand(num_images, num_priors, 2, generator=generator) - 0.5) * 8
    centre = priors.points[None] + shift
    pred_boxes = torch.cat([centre - half, centre + half], dim=-1)
    assigner = TaskAlignedAssigner(topk=4)
    result = assigner.assign(priors, gt, Predictions(scores, pred_boxes))
    assert int(result.pos_mask.sum()) > 0
    for image in range(num_images):
        gt_inds, quality = reference_assign(
            priors.points, boxes[image], labels[image], scores[image], pred_boxes[image],
            assigner.topk, assigner.alpha, assigner.beta, assigner.eps)
        assert result.gt_inds[image].tolist() == gt_inds
        assert result.quality[image].tolist() == pytest.approx(quality, abs=1e-5)
        expected_labels = [int(labels[image][g - 1]) if g else -1 for g in gt_inds]
        assert result.labels[image].tolist() == expected_labels
