"""Polygon masks through every transform, checked against the transformed image.

Each sample's image is its masks painted in: instance ``i`` (label ``L``, one label per
instance) fills its pycocotools raster with the colour code of ``L`` (255 in the channels of
the bits of ``L + 1``, black elsewhere). After a transform, the pixels whose thresholded code
is ``L + 1`` are where the image shows instance ``L``; its transformed mask, rasterised again,
must cover the same pixels (IoU above 0.9: interpolation only moves edges).
"""

from __future__ import annotations

import copy
import math

import attrs
import numpy as np
import pytest
import torch
from plugdet_yolo.transforms import LetterResize, YOLOv5HSVRandomAug

from core.data.transforms.affine import RandomAffine
from core.data.transforms.base import Pipeline
from core.data.transforms.boxes import map_instances
from core.data.transforms.geometric import Pad, RandomCrop, RandomFlip, RandomResize, Resize
from core.data.transforms.mix import MixUp, Mosaic
from core.data.transforms.photometric import Normalize, PhotoMetricDistortion
from core.data.transforms.tta import TestTimeAug, merge_tta_predictions
from core.errors import DataError
from core.masks import PolygonMasks
from core.structures import DetSample, Instances

FULL = 255
GRID = 3  # the image is cut in GRID x GRID cells, one polygon part per cell
SEEDS = range(6)
MIN_IOU = 0.9


def channels_of(label: int) -> list[int]:
    return [c for c in range(3) if (label + 1) >> c & 1]


def star_polygon(rng: np.random.Generator, centre: tuple[float, float], radius: float,
                 ) -> np.ndarray:
    """A star-shaped (never self-intersecting) polygon of 8 to 40 vertices."""
    count = int(rng.integers(8, 41))
    angles = np.sort(rng.uniform(0, 2 * math.pi, count))
    radii = radius * rng.uniform(0.6, 1.0, count)
    points = np.stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)], 1)
    return points.astype(np.float32)


def make_masked(seed: int, labels: list[int], ignore_labels: tuple[int, ...] = (),
                shape: tuple[int, int] | None = None) -> DetSample:
    """A uint8 sample whose gt (``labels``) and ignore (``ignore_labels``) instances are
    random polygons, one per grid cell (the first instance in two parts when a cell is free),
    painted into a black image; boxes are the polygons' bounding boxes."""
    rng = np.random.default_rng(seed)
    h, w = shape or (int(rng.integers(150, 221)), int(rng.integers(150, 221)))
    every = [*labels, *ignore_labels]
    cells = rng.permutation(GRID * GRID)
    parts_per_instance = [1] * len(every)
    if every and len(every) < GRID * GRID:
        parts_per_instance[0] = 2
    cell_h, cell_w = h / GRID, w / GRID
    polygons, used = [], 0
    for parts in parts_per_instance:
        instance = []
        for cell in cells[used : used + parts]:
            row, col = divmod(int(cell), GRID)
            centre = ((col + 0.5) * cell_w + rng.uniform(-3, 3),
                      (row + 0.5) * cell_h + rng.uniform(-3, 3))
            instance.append(star_polygon(rng, centre, 0.4 * min(cell_h, cell_w)))
        polygons.append(instance)
        used += parts
    masks = PolygonMasks(polygons, (h, w))
    image = torch.zeros((3, h, w), dtype=torch.uint8)
    for bitmap, label in zip(masks.to_tensor(), every, strict=True):
        for channel in channels_of(label):
            image[channel][bitmap] = FULL
    boxes = masks.bounding_boxes()
    split = len(labels)

    def instances(index: slice, group: list[int] | tuple[int, ...]) -> Instances:
        return Instances(boxes[index], torch.tensor(group, dtype=torch.int64).reshape(-1),
                         masks=masks[index])

    return DetSample(img_id=seed, img_path=f"masked-{seed}", ori_shape=(h, w), img_shape=(h, w),
                     pad_shape=(h, w), image=image, gt=instances(slice(0, split), labels),
                     ignore=instances(slice(split, None), ignore_labels))


def shown_labels(image: torch.Tensor) -> torch.Tensor:
    """``(H, W)`` int: the label whose code each pixel shows (-1: black / background)."""
    bits = image > 127
    return (bits[0].long() + 2 * bits[1].long() + 4 * bits[2].long()) - 1


def perimeter(masks: PolygonMasks, index: int) -> float:
    return sum(float(np.linalg.norm(np.roll(p, -1, 0) - p, axis=1).sum())
               for p in masks.polygons[index])


def compare_masks(sample: DetSample, instances: Instances, labels: set[int] | None = None,
                  ) -> tuple[int, int]:
    """Each instance's rasterised mask against the image pixels of its label; instances too
    small or thin for edge effects to stay below 10 % are not compared. Returns ``(compared,
    seen)``."""
    masks = instances.masks
    assert isinstance(masks, PolygonMasks)
    assert masks.shape == sample.img_shape
    h, w = masks.shape
    shown = shown_labels(sample.image[:, :h, :w])
    bitmaps = masks.to_tensor()
    areas = masks.areas()
    compared = seen = 0
    for index, label in enumerate(instances.labels.tolist()):
        if labels is not None and label not in labels:
            continue
        seen += 1
        area = float(areas[index])
        if area < 100 or area < 2.5 * perimeter(masks, index):
            continue
        pixels = shown == label
        mask = bitmaps[index]
        iou = float((pixels & mask).sum()) / float((pixels | mask).sum())
        assert iou > MIN_IOU, f"label {label}: mask/pixel IoU {iou:.3f}"
        compared += 1
    return compared, seen


def check_boxes(instances: Instances, hulls: bool) -> None:
    """Boxes enclose their masks' vertices; with ``hulls`` they are exactly their hulls."""
    masks = instances.masks
    assert isinstance(masks, PolygonMasks)
    hull = masks.bounding_boxes()
    if hulls:
        torch.testing.assert_close(instances.boxes, hull, atol=1e-3, rtol=0)
        return
    nonempty = hull[:, 2] > hull[:, 0]
    assert (instances.boxes[nonempty, :2] <= hull[nonempty, :2] + 1e-3).all()
    assert (instances.boxes[nonempty, 2:] >= hull[nonempty, 2:] - 1e-3).all()


def check_sample(sample: DetSample, hulls: bool) -> tuple[int, int]:
    compared, seen = 0, 0
    for instances in (sample.gt, sample.ignore):
        check_boxes(instances, hulls)
        got = compare_masks(sample, instances)
        compared, seen = compared + got[0], seen + got[1]
    return compared, seen


def without_masks(sample: DetSample) -> DetSample:
    return attrs.evolve(sample, gt=attrs.evolve(sample.gt, masks=None),
                        ignore=attrs.evolve(sample.ignore, masks=None), meta={})


class ListSource:
    """A sample source serving fixed samples in turn."""

    def __init__(self, samples: list[DetSample]) -> None:
        self.samples = samples
        self.served = 0

    def random_sample(self, rng, prepare):
        sample = copy.deepcopy(self.samples[self.served % len(self.samples)])
        self.served += 1
        return prepare(sample, rng)


# ---- one sample in, one sample out ----------------------------------------------------------

#: transform, whether boxes stay the exact hulls of their masks (no clipping of instances).
#: Crops cut polygons into slivers too thin to compare: fewer instances are compared there.
SINGLE = {
    "resize_keep_ratio": (Resize(scale=(120, 300)), True),
    "resize_no_ratio": (Resize(scale=(100, 260), keep_ratio=False), True),
    "random_resize": (RandomResize(scales=[(100, 120), (260, 300)]), True),
    "flip_horizontal": (RandomFlip(prob=1.0, direction="horizontal"), True),
    "flip_vertical": (RandomFlip(prob=1.0, direction="vertical"), True),
    "flip_diagonal": (RandomFlip(prob=1.0, direction="diagonal"), True),
    "crop": (RandomCrop(crop_size=(120, 130)), False),
    "crop_negative": (RandomCrop(crop_size=(80, 90), allow_negative_crop=True), False),
    "pad": (Pad(size_divisor=64), True),
    "letterbox": (LetterResize(scale=(160, 128)), True),
    "letterbox_up": (LetterResize(scale=(320, 320)), True),
    "affine": (RandomAffine(max_rotate_degree=30, max_shear_degree=8,
                            scaling_ratio_range=(0.7, 1.3)), True),
    "affine_border": (RandomAffine(max_rotate_degree=15, max_translate_ratio=0.2,
                                   border=(-30, -40)), True),
}


@pytest.mark.parametrize("name", list(SINGLE))
def test_transformed_masks_cover_the_transformed_pixels(name):
    transform, hulls = SINGLE[name]
    compared = seen = 0
    for seed in SEEDS:
        sample = make_masked(seed, labels=[0, 1, 2, 3][: 3 + seed % 2], ignore_labels=(5,))
        out = transform(sample, np.random.default_rng(seed))
        got = check_sample(out, hulls)
        compared, seen = compared + got[0], seen + got[1]
    coverage = 0.4 if isinstance(transform, RandomCrop) else 0.8
    assert seen > 0 and compared >= coverage * seen, (compared, seen)


@pytest.mark.parametrize("name", list(SINGLE))
def test_masks_leave_everything_else_as_without_masks(name):
    """Same image, same drawn numbers; same boxes, except an affine's (recomputed from the
    masks)."""
    transform, _ = SINGLE[name]
    for seed in SEEDS[:3]:
        sample = make_masked(seed, labels=[0, 1, 2], ignore_labels=(5,))
        plain_rng, masked_rng = np.random.default_rng(seed), np.random.default_rng(seed)
        plain = transform(without_masks(copy.deepcopy(sample)), plain_rng)
        masked = transform(sample, masked_rng)
        assert plain_rng.random() == masked_rng.random()
        assert torch.equal(plain.image, masked.image)
        assert plain.img_shape == masked.img_shape and plain.scale_factor == masked.scale_factor
        assert plain.meta == masked.meta
        assert plain.gt.masks is None
        if not name.startswith("affine"):
            assert torch.equal(plain.gt.boxes, masked.gt.boxes)
            assert torch.equal(plain.gt.labels, masked.gt.labels)
            assert torch.equal(plain.ignore.boxes, masked.ignore.boxes)


def test_test_time_views_carry_their_masks():
    tta = TestTimeAug(scales=[(100, 130), (240, 240)], flip=True, flip_direction="diagonal")
    for seed in SEEDS[:3]:
        views = tta(make_masked(seed, labels=[0, 1, 2]), np.random.default_rng(seed))
        assert len(views) == 4
        for view in views:
            compared, seen = check_sample(view, hulls=True)
            assert seen > 0 and compared >= 0.8 * seen


@pytest.mark.parametrize("transform", [PhotoMetricDistortion(prob=1.0), YOLOv5HSVRandomAug(),
                                       Normalize()], ids=lambda t: type(t).__name__)
def test_photometric_transforms_leave_masks_as_they_are(transform):
    sample = make_masked(3, labels=[0, 1, 2], ignore_labels=(4,))
    gt_masks, ignore_masks = sample.gt.masks, sample.ignore.masks
    out = transform(sample, np.random.default_rng(0))
    assert out.gt.masks is gt_masks and out.ignore.masks is ignore_masks


# ---- mixing transforms ----------------------------------------------------------------------


def test_mosaic_masks_follow_their_tiles():
    # labels 0..6 spread over the four tiles so that every instance has its own colour code
    groups = [[0, 1], [2, 3], [4, 5], [6]]
    mosaic = Mosaic(img_scale=(200, 220), center_ratio_range=(0.6, 1.4))
    compared = seen = 0
    for seed in SEEDS:
        tiles = [make_masked(10 * seed + k, labels=group) for k, group in enumerate(groups)]
        source = ListSource(tiles[1:])
        out = Pipeline([mosaic])(tiles[0], np.random.default_rng(seed), source=source)
        assert out.gt.masks.shape == out.img_shape == (400, 440)
        got = check_sample(out, hulls=False)
        compared, seen = compared + got[0], seen + got[1]
    assert seen > 0 and compared >= 0.6 * seen, (compared, seen)


def test_mixup_masks_follow_the_mixed_in_image():
    # alpha = 1 shows only the mixed-in image: its instances (labels 3..5) are checked
    # against the pixels, the base sample's masks must come out unchanged
    mixup = MixUp(img_scale=(180, 180), ratio_range=(0.7, 1.3), alpha=1.0)
    compared = seen = 0
    for seed in SEEDS:
        base = make_masked(seed, labels=[0, 1, 2], ignore_labels=(6,))
        other = make_masked(100 + seed, labels=[3, 4, 5])
        base_gt = copy.deepcopy(base.gt)
        out = Pipeline([mixup])(base, np.random.default_rng(seed), ListSource([other]))
        assert out.gt.masks.shape == out.img_shape == base.img_shape
        kept = len(base_gt)
        assert torch.equal(out.gt.boxes[:kept], base_gt.boxes)
        for before, after in zip(base_gt.masks.polygons, out.gt.masks.polygons[:kept],
                                 strict=True):
            assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
        check_boxes(out.gt, hulls=False)
        got = compare_masks(out, out.gt, labels={3, 4, 5})
        compared, seen = compared + got[0], seen + got[1]
    assert seen > 0 and compared >= 0.6 * seen, (compared, seen)


def test_mosaic_then_affine_then_flip_keeps_masks_aligned():
    pipeline = Pipeline([Mosaic(img_scale=(200, 200)),
                         RandomAffine(max_rotate_degree=10, border=(-100, -100)),
                         RandomFlip(prob=0.5)])
    groups = [[0, 1], [2, 3], [4, 5], [6]]
    compared = seen = 0
    for seed in SEEDS:
        tiles = [make_masked(20 * seed + k, labels=group) for k, group in enumerate(groups)]
        out = pipeline(tiles[0], np.random.default_rng(seed), source=ListSource(tiles[1:]))
        assert out.img_shape == (200, 200)
        got = check_sample(out, hulls=True)
        compared, seen = compared + got[0], seen + got[1]
    assert seen > 0 and compared >= 0.5 * seen, (compared, seen)


# ---- RandomAffine by hand -------------------------------------------------------------------


def square_sample(polygons: list[list[np.ndarray]], boxes: torch.Tensor | None = None,
                  ) -> DetSample:
    """A black 100x100 sample whose instances (labels 0, 1, ...) have ``polygons``; boxes
    default to their hulls."""
    masks = PolygonMasks(polygons, (100, 100))
    boxes = masks.bounding_boxes() if boxes is None else boxes
    return DetSample(image=torch.zeros((3, 100, 100), dtype=torch.uint8), ori_shape=(100, 100),
                     img_shape=(100, 100), pad_shape=(100, 100),
                     gt=Instances(boxes, torch.arange(len(polygons)), masks=masks))


def fixed_affine(matrix: np.ndarray, **kwargs) -> RandomAffine:
    affine = RandomAffine(**kwargs)
    affine.draw_matrix = lambda rng, shape: (matrix, 1.0)  # type: ignore[method-assign]
    return affine


def test_affine_box_of_a_rotated_square_is_the_hull_of_its_polygon():
    # a 40 px square centred at (50, 50) and its lower-left half, turned by 45 degrees about
    # the centre: the square becomes a diamond of half-diagonal r = 20 * sqrt(2) (its hull is
    # its corner box), the triangle half of that diamond, while its corner box (the square's
    # box turned) stays the whole diamond's box
    square = np.array([[30, 30], [70, 30], [70, 70], [30, 70]], np.float32)
    triangle = np.array([[30, 30], [70, 70], [30, 70]], np.float32)
    sample = square_sample([[square], [triangle]])
    cos = sin = math.sqrt(0.5)
    about = np.array([[1, 0, 50], [0, 1, 50], [0, 0, 1.0]])
    turn = np.array([[cos, sin, 0], [-sin, cos, 0], [0, 0, 1.0]])
    matrix = about @ turn @ np.linalg.inv(about)
    plain = fixed_affine(matrix)(without_masks(sample), np.random.default_rng(0))
    out = fixed_affine(matrix)(sample, np.random.default_rng(0))
    r = 20 * math.sqrt(2)
    # square -> diamond of half-diagonal r; triangle (30,30),(70,70),(30,70) -> (50-r, 50),
    # (50+r, 50), (50, 50+r): half the diamond
    expected = torch.tensor([[50 - r, 50 - r, 50 + r, 50 + r], [50 - r, 50, 50 + r, 50 + r]])
    torch.testing.assert_close(out.gt.boxes, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(plain.gt.boxes[1], expected[0], atol=1e-4, rtol=0)


def test_affine_drops_an_instance_whose_polygon_leaves_the_output():
    # a shift by (-40, -40): the triangle's hypotenuse x + y = -20 ends outside, its box
    # (clipped to (0, 0, 10, 10)) does not; the square stays
    triangle = np.array([[10, 10], [50, 10], [10, 50]], np.float32)
    square = np.array([[60, 60], [90, 60], [90, 90], [60, 90]], np.float32)
    sample = square_sample([[triangle], [square]])
    shift = np.array([[1, 0, -40], [0, 1, -40], [0, 0, 1.0]])
    affine = fixed_affine(shift, min_area_ratio=0.0)
    plain = affine(without_masks(copy.deepcopy(sample)), np.random.default_rng(0))
    assert plain.gt.labels.tolist() == [0, 1]
    out = affine(sample, np.random.default_rng(0))
    assert out.gt.labels.tolist() == [1]
    torch.testing.assert_close(out.gt.boxes, torch.tensor([[20.0, 20.0, 50.0, 50.0]]))
    assert len(out.gt.masks) == 1 and out.gt.masks.shape == (100, 100)


def test_affine_keeps_the_corner_box_of_an_instance_without_polygons():
    square = np.array([[10, 10], [30, 10], [30, 30], [10, 30]], np.float32)
    boxes = torch.tensor([[10.0, 10.0, 30.0, 30.0], [50.0, 50.0, 80.0, 70.0]])
    sample = square_sample([[square], []], boxes)
    shift = np.array([[1, 0, 5], [0, 1, -5], [0, 0, 1.0]])
    out = fixed_affine(shift)(sample, np.random.default_rng(0))
    torch.testing.assert_close(out.gt.boxes, boxes + torch.tensor([5.0, -5.0, 5.0, -5.0]))
    assert out.gt.masks.polygons[1] == []


# ---- refusals -------------------------------------------------------------------------------

GEOMETRIC = [Resize(scale=(64, 64)), RandomFlip(prob=1.0), RandomCrop(crop_size=(60, 60)),
             LetterResize(scale=(64, 64)), RandomAffine()]


@pytest.mark.parametrize("transform", GEOMETRIC, ids=lambda t: type(t).__name__)
def test_bitmap_masks_are_refused_by_geometric_transforms(transform):
    sample = make_masked(1, labels=[0, 1])
    sample.gt = attrs.evolve(sample.gt, masks=sample.gt.masks.to_tensor())
    with pytest.raises(DataError, match="must be PolygonMasks"):
        transform(sample, np.random.default_rng(0))


@pytest.mark.parametrize("transform", GEOMETRIC, ids=lambda t: type(t).__name__)
def test_masks_of_another_frame_are_refused(transform):
    sample = make_masked(1, labels=[0, 1], ignore_labels=(2,))
    sample.ignore = attrs.evolve(sample.ignore,
                                 masks=attrs.evolve(sample.ignore.masks, shape=(10, 10)))
    with pytest.raises(DataError, match=r"ignore: masks refer to a 10x10 frame"):
        transform(sample, np.random.default_rng(0))


def test_mosaic_refuses_samples_with_and_without_masks():
    tiles = [make_masked(k, labels=[k]) for k in range(4)]
    tiles[2] = without_masks(tiles[2])
    with pytest.raises(DataError, match="with masks and samples without"):
        Pipeline([Mosaic(img_scale=(100, 100), center_ratio_range=(1.0, 1.0))])(
            tiles[0], np.random.default_rng(0), source=ListSource(tiles[1:]))


def test_moving_boxes_without_their_masks_is_refused():
    sample = make_masked(0, labels=[0, 1])
    with pytest.raises(DataError, match="without their masks"):
        map_instances(sample.gt, sample.gt.boxes + 1)


def test_merged_test_time_predictions_keep_their_masks():
    masks = torch.zeros((2, 8, 8), dtype=torch.bool)
    masks[0, :4], masks[1, 4:] = True, True
    boxes = torch.tensor([[0.0, 0.0, 8.0, 4.0], [0.0, 4.0, 8.0, 8.0]])
    views = [DetSample(meta={"tta_group": 0}), DetSample(meta={"tta_group": 0})]
    preds = [Instances(boxes, torch.tensor([0, 1]), masks=masks),
             Instances(boxes[:1], torch.tensor([0]), masks=masks[:1])]
    _, merged = merge_tta_predictions(views, preds)
    assert len(merged[0]) == 2
    for box, mask in zip(merged[0].boxes, merged[0].masks, strict=True):
        row = 0 if box[1] == 0 else 1
        assert torch.equal(mask, masks[row])
