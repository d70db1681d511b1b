"""YOLOv5 shape matching: hand-computed cases and a per-box python loop on random boxes."""

import math

import pytest
import torch
from plugdet_yolo.yolov5_assigner import YOLOv5ShapeMatchAssigner
from plugdet_yolo.yolov5_head import YOLOV5_ANCHORS

from core.contracts import NEGATIVE, GTBatch, Priors
from core.errors import ConfigError
from core.models.priors import AnchorGenerator

# Two levels on a 64 x 64 input: stride 8 (8 x 8 cells, anchors 8x8 and 64x16) and stride 16
# (4 x 4 cells, one 100x100 anchor); prior index = first + (y * W + x) * A + a.
STRIDES = [8, 16]
ANCHORS = [[[8, 8], [64, 16]], [[100, 100]]]
GRIDS = [(8, 8), (4, 4)]
LEVEL1 = 8 * 8 * 2


def small_priors() -> Priors:
    generator = AnchorGenerator(strides=STRIDES, base_sizes=ANCHORS)
    return Priors.from_levels(generator.grid_priors(GRIDS), STRIDES)


def fine(x: int, y: int, anchor: int) -> int:
    return (y * 8 + x) * 2 + anchor


def coarse(x: int, y: int) -> int:
    return LEVEL1 + y * 4 + x


def box(cx: float, cy: float, w: float, h: float) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def assign(boxes: list[list[list[float]]], labels=None, anchor_t=4.0, priors=None):
    labels = labels or [list(range(len(b))) for b in boxes]
    gt = GTBatch.from_lists([torch.tensor(b).reshape(-1, 4) for b in boxes],
                            [torch.tensor(lab, dtype=torch.long) for lab in labels])
    return YOLOv5ShapeMatchAssigner(anchor_t).assign(priors or small_priors(), gt)


def positives(result, image=0) -> dict[int, int]:
    """prior index -> 0-based gt index."""
    gt_inds = result.gt_inds[image]
    return {int(i): int(gt_inds[i]) - 1 for i in (gt_inds > 0).nonzero().flatten()}


def test_one_anchor_with_the_left_and_upper_neighbours():
    # 10x10 matches only the 8x8 anchor (1.25); centre (19, 27) = cell (2.375, 3.375): both
    # fractions < 0.5 and > 1 -> left (1, 3) and up (2, 2); the right/lower halves are not.
    result = assign([[box(19, 27, 10, 10)]], labels=[[4]])
    assert positives(result) == {fine(2, 3, 0): 0, fine(1, 3, 0): 0, fine(2, 2, 0): 0}
    assert result.labels[0, fine(2, 3, 0)] == 4
    assert int((result.labels[0] >= 0).sum()) == 3
    assert result.max_overlaps[0, fine(1, 3, 0)].item() == pytest.approx(64 / 100)
    assert int((result.gt_inds == NEGATIVE).sum()) == result.gt_inds.numel() - 3
    assert result.num_gts.tolist() == [1]


def test_right_and_lower_neighbours_and_the_half_cell_edge():
    # centre (29, 37) = (3.625, 4.625): right (4, 4) and down (3, 5)
    assert set(positives(assign([[box(29, 37, 10, 10)]]))) == {
        fine(3, 4, 0), fine(4, 4, 0), fine(3, 5, 0)}
    # exactly half a cell, (2.5, 3.5): neither neighbour in either direction
    assert set(positives(assign([[box(20, 28, 10, 10)]]))) == {fine(2, 3, 0)}
    # on a cell border in x, (3.0, 3.5): both horizontal neighbours
    assert set(positives(assign([[box(24, 28, 10, 10)]]))) == {
        fine(3, 3, 0), fine(2, 3, 0), fine(4, 3, 0)}


def test_border_boxes_stay_on_the_grid():
    # centre (62, 6) = (7.75, 0.75): no right neighbour (8 - 7.75 < 1), no upper one
    # (0.75 < 1), the lower one (7, 1) is taken
    assert set(positives(assign([[box(62, 6, 10, 10)]]))) == {fine(7, 0, 0), fine(7, 1, 0)}
    # centre (64, 64) on the corner: cell (8, 8) and its neighbours clamp to (7, 7)
    assert positives(assign([[box(64, 64, 12, 12)]])) == {fine(7, 7, 0): 0}


def test_a_box_matching_anchors_on_two_levels():
    # 40x40 matches 64x16 (ratios 1.6, 2.5) on stride 8 and 100x100 (2.5) on stride 16
    result = assign([[box(30, 34, 40, 40)]])
    # stride 8: (3.75, 4.25) -> own (3, 4), right (4, 4), up (3, 3), anchor 1
    # stride 16: (1.875, 2.125) -> own (1, 2), right (2, 2), up (1, 1)
    assert positives(result) == {p: 0 for p in (
        fine(3, 4, 1), fine(4, 4, 1), fine(3, 3, 1), coarse(1, 2), coarse(2, 2), coarse(1, 1))}


def test_images_without_boxes():
    result = assign([[box(19, 27, 10, 10)], []])
    assert positives(result, 1) == {}
    assert (result.labels[1] == -1).all() and (result.max_overlaps[1] == 0).all()
    assert result.num_gts.tolist() == [1, 0]
    empty = assign([[], []])
    assert (empty.gt_inds == NEGATIVE).all() and empty.gt_inds.shape == (2, LEVEL1 + 16)


def test_the_ratio_threshold_is_strict():
    # 32x8 against the 8x8 anchor: ratio exactly 4 -> no match; the 64x16 one matches (2.0)
    at_edge = positives(assign([[box(19, 27, 32, 8)]]))
    assert all(p % 2 == 1 for p in at_edge) and at_edge
    below = positives(assign([[box(19, 27, 31.9, 8)]]))
    assert {p % 2 for p in below} == {0, 1}
    assert positives(assign([[box(19, 27, 32, 8)]], anchor_t=4.01)) == below | at_edge


def test_a_prior_claimed_twice_goes_to_the_better_shape_then_the_nearer_centre():
    # both boxes claim cell (2, 3) anchor 0: 9x9 (ratio 1.125) beats 12x12 (1.5)
    result = assign([[box(19, 27, 12, 12), box(21, 29, 9, 9)]])
    assert positives(result)[fine(2, 3, 0)] == 1
    # equal shapes: the box whose centre is nearer the cell's centre (20, 28) wins
    result = assign([[box(17, 25, 10, 10), box(21, 27, 10, 10)]])
    assert positives(result)[fine(2, 3, 0)] == 1
    # the same box twice: the lower index
    result = assign([[box(19, 27, 10, 10), box(19, 27, 10, 10)]])
    assert set(positives(result).values()) == {0}


def test_bad_threshold_is_a_config_error():
    with pytest.raises(ConfigError, match="anchor_t"):
        YOLOv5ShapeMatchAssigner(anchor_t=1.0)


def reference_assign(boxes, strides, anchors, grids, anchor_t):
    """A direct loop over boxes, levels, anchors and the five candidate cells: for each
    claimed prior the (ratio, distance, gt index) of the winning box, as documented."""
    claims: dict[int, tuple[float, float, int]] = {}
    first = 0
    for stride, level_anchors, (height, width) in zip(strides, anchors, grids, strict=True):
        for index, (x1, y1, x2, y2) in enumerate(boxes):
            gx, gy = (x1 + x2) / 2 / stride, (y1 + y2) / 2 / stride
            cells = [(math.floor(gx), math.floor(gy))]
            if gx % 1 < 0.5 and gx > 1:
                cells.append((math.floor(gx) - 1, math.floor(gy)))
            if gy % 1 < 0.5 and gy > 1:
                cells.append((math.floor(gx), math.floor(gy) - 1))
            if (width - gx) % 1 < 0.5 and width - gx > 1:
                cells.append((math.floor(gx) + 1, math.floor(gy)))
            if (height - gy) % 1 < 0.5 and height - gy > 1:
                cells.append((math.floor(gx), math.floor(gy) + 1))
            for a, (aw, ah) in enumerate(level_anchors):
                rw, rh = (x2 - x1) / aw, (y2 - y1) / ah
                ratio = max(rw, 1 / rw, rh, 1 / rh)
                if ratio >= anchor_t:
                    continue
                for cx, cy in cells:
                    cx, cy = min(max(cx, 0), width - 1), min(max(cy, 0), height - 1)
                    prior = first + (cy * width + cx) * len(level_anchors) + a
                    key = (ratio, math.hypot(gx - cx - 0.5, gy - cy - 0.5), index)
                    claims[prior] = min(claims.get(prior, key), key)
        first += height * width * len(level_anchors)
    return {prior: key[2] for prior, key in claims.items()}


def test_random_boxes_equal_a_direct_loop():
    """Default anchors on a non-square 160 x 224 input, 4 images of up to 12 boxes."""
    generator = torch.Generator().manual_seed(0)
    strides, grids = [8, 16, 32], [(20, 28), (10, 14), (5, 7)]
    anchor_gen = AnchorGenerator(strides=strides, base_sizes=YOLOV5_ANCHORS)
    priors = Priors.from_levels(anchor_gen.grid_priors(grids), strides)
    images = []
    for count in (12, 0, 5, 9):
        centre = torch.rand(count, 2, generator=generator) * torch.tensor([224.0, 160.0])
        size = 4 + torch.rand(count, 2, generator=generator) * 196
        images.append(torch.cat([centre - size / 2, centre + size / 2], dim=1))
    labels = [torch.randint(0, 5, (len(b),), generator=generator) for b in images]
    gt = GTBatch.from_lists(images, labels)
    result = YOLOv5ShapeMatchAssigner(4.0).assign(priors, gt)
    total = 0
    for image, (boxes, image_labels) in enumerate(zip(images, labels, strict=True)):
        expected = reference_assign(boxes.tolist(), strides, YOLOV5_ANCHORS, grids, 4.0)
        assert positives(result, image) == expected
        for prior, index in expected.items():
            assert result.labels[image, prior] == image_labels[index]
        total += len(expected)
    assert total > 100  # the random boxes do exercise the rules
