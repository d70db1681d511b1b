"""ATSSAssigner: a hand-computed case and a per-box reference on random boxes."""

import pytest
import torch
from torchvision.ops import box_iou

from core.contracts import GTBatch, Priors
from core.errors import ConfigError
from core.models.assigners import ATSSAssigner
from core.models.priors import AnchorGenerator

ROW = torch.tensor([[0.0, 0, 16, 16], [16, 0, 32, 16], [32, 0, 48, 16], [48, 0, 64, 16]])
COARSE = torch.tensor([[0.0, -8, 32, 24], [32, -8, 64, 24]])


def test_hand_computed_case():
    """Level 0: four 16 px anchors in a row, level 1: two 32 px anchors, top-2 per level.

    Box A = [0, 0, 16, 16]: candidates p0, p1 (level 0), p4, p5 (level 1) with IoUs
    1, 0, 0.25, 0 -> threshold 0.3125 + 0.4732 = 0.786 -> only p0.
    Box B = [40, 0, 64, 16]: candidates p3, p2, p5, p4 with IoUs 2/3, 1/4, 3/8, 0 ->
    threshold 0.3229 + 0.2772 = 0.600 -> only p3 (its centre (56, 8) is inside B).
    """
    priors = Priors.from_levels([ROW, COARSE], [16, 32])
    gt = GTBatch.from_lists([torch.tensor([[0.0, 0, 16, 16], [40, 0, 64, 16]])],
                            [torch.tensor([3, 1])])
    result = ATSSAssigner(topk=2).assign(priors, gt)
    assert result.gt_inds.tolist() == [[1, 0, 0, 2, 0, 0]]
    assert result.labels.tolist() == [[3, -1, -1, 1, -1, -1]]
    assert result.quality[0].tolist() == pytest.approx([1.0, 0, 0, 2 / 3, 0, 0])


def reference_atss(priors: Priors, boxes: torch.Tensor, topk: int) -> torch.Tensor:
    """Per box, per level, in plain loops: gt_inds ``(N,)`` (0 negative, i + 1 box i)."""
    anchors, centers = priors.boxes, priors.points
    iou = box_iou(boxes, anchors)
    best = torch.full((len(anchors),), -1.0)
    gt_inds = torch.zeros(len(anchors), dtype=torch.long)
    for index, box in enumerate(boxes):
        center = (box[:2] + box[2:]) / 2
        candidates, start = [], 0
        for size in priors.level_sizes:
            distance = (centers[start:start + size] - center).norm(dim=1)
            k = min(topk, size)
            candidates += (distance.topk(k, largest=False).indices + start).tolist()
            start += size
        values = iou[index, candidates]
        threshold = values.mean() + values.std()
        for prior, value in zip(candidates, values.tolist(), strict=True):
            x, y = centers[prior].tolist()
            inside = min(x - box[0], y - box[1], box[2] - x, box[3] - y) > 0.01
            if value >= threshold and inside and value > best[prior]:
                best[prior] = value
                gt_inds[prior] = index + 1
    return gt_inds


def test_matches_a_per_box_reference_on_random_boxes():
    generator = torch.Generator().manual_seed(0)
    anchors = AnchorGenerator(strides=[8, 16, 32], octave_base_scale=4.0, scales_per_octave=1,
                              ratios=[1.0])
    priors = Priors.from_levels(anchors.grid_priors([(16, 16), (8, 8), (4, 4)]), [8, 16, 32])
    counts = [5, 1, 12, 0]
    boxes = []
    for count in counts:
        xy = torch.rand(count, 2, generator=generator) * 100
        wh = 8 + torch.rand(count, 2, generator=generator) * 60
        boxes.append(torch.cat([xy, (xy + wh).clamp(max=128)], dim=1))
    gt = GTBatch.from_lists(boxes, [torch.zeros(c, dtype=torch.long) for c in counts])
    result = ATSSAssigner(topk=9).assign(priors, gt)
    for image, image_boxes in enumerate(boxes):
        expected = reference_atss(priors, image_boxes, 9) if len(image_boxes) else torch.zeros(
            priors.num_priors, dtype=torch.long)
        assert torch.equal(result.gt_inds[image], expected), image
    assert (result.gt_inds >= 0).all()  # ATSS ignores nothing
    assert result.pos_mask[2].sum() >= 12 - 2  # nearly every box gets positives


def test_needs_shared_anchor_boxes():
    points = Priors.from_levels([torch.zeros(4, 2)], [8])
    gt = GTBatch.from_lists([torch.tensor([[0.0, 0, 4, 4]])], [torch.tensor([0])])
    with pytest.raises(ConfigError, match="anchor boxes"):
        ATSSAssigner().assign(points, gt)
    with pytest.raises(ConfigError, match="topk"):
        ATSSAssigner(topk=0)
