"""Box geometry through every transform, checked against painted pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.data.transforms.base import Pipeline
from core.data.transforms.geometric import (
    Pad,
    RandomCrop,
    RandomFlip,
    RandomResize,
    Resize,
    fit_size,
)
from core.data.transforms.mix import MixUp, Mosaic
from core.data.transforms.tta import TestTimeAug, merge_tta_predictions, tta_pipeline
from core.errors import ConfigError, DataError
from core.models.detectors.base import to_original
from core.structures import DetSample, Instances

BOXES = [(5, 8, 25, 30), (40, 10, 70, 26), (12, 40, 60, 58)]
LABELS = [0, 1, 2]


@pytest.mark.parametrize("direction", ["horizontal", "vertical", "diagonal"])
def test_flip_moves_boxes_with_pixels(paint, rng, direction):
    sample = paint.make((64, 80), BOXES, LABELS)
    out = RandomFlip(prob=1.0, direction=direction)(sample, rng)
    assert out.flip and out.flip_direction == direction
    paint.check(out)
    assert not torch.equal(out.gt.boxes, torch.tensor(BOXES, dtype=torch.float32))


def test_flip_twice_restores_sample(paint, rng):
    sample = paint.make((64, 80), BOXES, LABELS)
    original = sample.image.clone()
    flip = RandomFlip(prob=1.0)
    out = flip(flip(sample, rng), rng)
    assert torch.equal(out.image, original)
    assert torch.equal(out.gt.boxes, torch.tensor(BOXES, dtype=torch.float32))


def test_flip_probability_zero_keeps_sample(paint, rng):
    out = RandomFlip(prob=0.0)(paint.make((64, 80), BOXES, LABELS), rng)
    assert not out.flip
    paint.check(out)


@pytest.mark.parametrize(
    ("scale", "keep_ratio", "expected_shape"),
    [((128, 160), True, (128, 160)), ((200, 100), True, (100, 125)), ((50, 120), False, (50, 120))],
)
def test_resize_scales_boxes_and_meta(paint, rng, scale, keep_ratio, expected_shape):
    sample = paint.make((64, 80), BOXES, LABELS)
    out = Resize(scale=scale, keep_ratio=keep_ratio)(sample, rng)
    assert tuple(out.image.shape[1:]) == expected_shape
    assert out.img_shape == expected_shape
    sx, sy = out.scale_factor
    assert sx == pytest.approx(expected_shape[1] / 80)
    assert sy == pytest.approx(expected_shape[0] / 64)
    expected = torch.tensor(BOXES, dtype=torch.float32) * torch.tensor([sx, sy, sx, sy])
    assert torch.allclose(out.gt.boxes, expected)
    paint.check(out, tol_px=2.0)


def test_fit_size_bounds_long_and_short_side():
    assert fit_size((400, 800), (600, 1000), keep_ratio=True) == (500, 1000)
    assert fit_size((800, 400), (600, 1000), keep_ratio=True) == (1000, 500)
    assert fit_size((100, 100), (600, 1000), keep_ratio=True) == (600, 600)


def test_random_resize_draws_within_range_and_is_seeded(paint):
    transform = RandomResize(scales=[(100, 100), (200, 200)], mode="range")
    sizes = set()
    for seed in range(10):
        out = transform(paint.make((64, 80), BOXES, LABELS), np.random.default_rng(seed))
        again = transform(paint.make((64, 80), BOXES, LABELS), np.random.default_rng(seed))
        assert out.img_shape == again.img_shape
        assert 100 <= max(out.img_shape) <= 200
        paint.check(out, tol_px=2.0)
        sizes.add(out.img_shape)
    assert len(sizes) > 1


def test_random_crop_clips_and_drops_boxes_consistently(paint):
    crop = RandomCrop(crop_size=(32, 40), allow_negative_crop=True)
    dropped = clipped = 0
    for seed in range(40):
        out = crop(paint.make((64, 80), BOXES, LABELS), np.random.default_rng(seed))
        assert out.img_shape == (32, 40) and tuple(out.image.shape[1:]) == (32, 40)
        paint.check(out)  # surviving boxes bound exactly their visible pixels
        for label in set(LABELS) - set(out.gt.labels.tolist()):
            assert paint.box(out.image, label) is None  # dropped = not visible
        dropped += len(LABELS) - len(out.gt)
        widths = out.gt.boxes[:, 2] - out.gt.boxes[:, 0]
        clipped += int((widths < torch.tensor([20, 30, 48])[out.gt.labels]).sum())
    assert dropped > 0 and clipped > 0


def test_random_crop_keeps_a_box_unless_negative_crops_are_allowed(paint):
    crop = RandomCrop(crop_size=(16, 16), allow_negative_crop=False, max_tries=50)
    for seed in range(20):
        out = crop(paint.make((64, 80), BOXES, LABELS), np.random.default_rng(seed))
        assert len(out.gt) > 0


def test_pad_to_divisor_keeps_boxes_and_pixels(paint, rng):
    sample = paint.make((50, 70), BOXES[:2], LABELS[:2])
    out = Pad(size_divisor=32)(sample, rng)
    assert tuple(out.image.shape[1:]) == (64, 96)
    assert out.pad_shape == (64, 96) and out.img_shape == (50, 70)
    assert int(out.image[:, 50:, :].sum()) == 0 and int(out.image[:, :, 70:].sum()) == 0
    paint.check(out)


def test_pad_to_fixed_size_rejects_larger_image(paint, rng):
    out = Pad(size=(80, 80))(paint.make((50, 70), BOXES[:2], LABELS[:2]), rng)
    assert out.pad_shape == (80, 80)
    with pytest.raises(DataError, match="exceeds pad size"):
        Pad(size=(40, 40))(paint.make((50, 70), BOXES[:2], LABELS[:2]), rng)


class ListSource:
    """A sample source serving fixed samples in turn."""

    def __init__(self, samples):
        self.samples = samples
        self.served = 0

    def random_sample(self, rng, prepare):
        sample = self.samples[self.served % len(self.samples)]
        self.served += 1
        return prepare(sample, rng)


def test_mosaic_places_four_images_with_their_boxes(paint):
    tiles = [paint.make((60, 80), [(5 + 3 * i, 5, 45, 40)], [i], img_id=i) for i in range(4)]
    mosaic = Mosaic(img_scale=(64, 64), center_ratio_range=(0.7, 1.3), pad_value=0.0)
    pipeline = Pipeline([mosaic])
    seen_labels = set()
    for seed in range(8):
        source = ListSource(tiles[1:])
        out = pipeline(tiles[0], np.random.default_rng(seed), source=source)
        assert source.served == 3
        assert tuple(out.image.shape[1:]) == (128, 128) and out.img_shape == (128, 128)
        paint.check(out, tol_px=2.0)
        for label in set(range(4)) - set(out.gt.labels.tolist()):
            found = paint.box(out.image, label)
            assert found is None or (found[2] - found[0]) * (found[3] - found[1]) <= 4
        seen_labels |= set(out.gt.labels.tolist())
    assert seen_labels == {0, 1, 2, 3}


def test_mosaic_without_source_is_an_error(paint, rng):
    with pytest.raises(DataError, match="needs the dataset"):
        Pipeline([Mosaic(img_scale=(32, 32))])(paint.make((40, 40), [(1, 1, 9, 9)], [0]), rng)


def test_mixup_blends_images_and_keeps_both_sets_of_boxes(paint):
    # base objects are red and green, the other image's object blue: blending halves them
    base = paint.make((64, 80), [(5, 8, 25, 30), (40, 10, 70, 26)], [0, 1])
    other = paint.make((48, 48), [(26, 20, 44, 44)], [3])
    mixed_in = 0
    for seed in range(10):
        transform = MixUp(img_scale=(48, 48), ratio_range=(0.8, 1.2), pad_value=0.0)
        out = Pipeline([transform])(base, np.random.default_rng(seed), ListSource([other]))
        assert tuple(out.image.shape[1:]) == (64, 80)
        assert set(out.gt.labels.tolist()) >= {0, 1}
        paint.check(out, scale=0.5, others_zero=False, tol_px=2.0)
        assert out.meta["mixup"] is True
        mixed_in += 3 in out.gt.labels.tolist()
        if 3 not in out.gt.labels.tolist():
            assert paint.box(out.image, 3, scale=0.5, others_zero=False) is None
    assert mixed_in > 0


def test_tta_views_map_back_to_original_coordinates(paint):
    sample = paint.make((64, 80), BOXES, LABELS)
    tta = TestTimeAug(scales=[(96, 120), (48, 60)], flip=True, transforms=[Pad(size_divisor=16)])
    views = tta(sample, np.random.default_rng(0))
    assert len(views) == 4
    assert [v.flip for v in views] == [False, True, False, True]
    for view in views:
        paint.check(view, tol_px=2.0)
        assert view.pad_shape[0] % 16 == 0 and view.pad_shape[1] % 16 == 0
        view.meta["tta_group"] = 7
    # A perfect detector answers each view's ground truth, mapped back to the original image
    # as detector.predict does (flip undone); scores favour the first view.
    preds = []
    for rank, view in enumerate(views):
        pred = Instances(view.gt.boxes, view.gt.labels, torch.full((3,), 0.9 - rank / 10))
        preds.append(view.instances_to_original(pred, clip=True))
    samples, merged = merge_tta_predictions(views, preds, iou_thr=0.5)
    assert len(samples) == 1 and samples[0].pred is merged[0]
    order = torch.argsort(merged[0].labels)
    assert torch.allclose(
        merged[0].boxes[order], torch.tensor(BOXES, dtype=torch.float32), atol=1e-3
    )
    assert merged[0].labels[order].tolist() == LABELS


def test_a_flipped_view_is_unmirrored_before_the_merge(paint):
    sample = paint.make((64, 80), BOXES, LABELS)
    views = TestTimeAug(scales=[(64, 80)], flip=True)(sample, np.random.default_rng(0))
    flipped_view = views[1]
    pred = Instances(
        boxes=flipped_view.gt.boxes, labels=flipped_view.gt.labels, scores=torch.ones(3)
    )
    _, merged = merge_tta_predictions([flipped_view], to_original([pred], [flipped_view]))
    order = torch.argsort(merged[0].labels)
    assert torch.allclose(merged[0].boxes[order], torch.tensor(BOXES, dtype=torch.float32))
    assert not torch.allclose(flipped_view.gt.boxes, torch.tensor(BOXES, dtype=torch.float32))


def test_merge_groups_views_per_image():
    def view(group):
        return DetSample(img_id=group, ori_shape=(50, 50), meta={"tta_group": group})

    def pred(x, score):
        return Instances(
            boxes=torch.tensor([[x, 0.0, x + 10, 10]]),
            labels=torch.tensor([0]),
            scores=torch.tensor([score]),
        )

    views = [view(0), view(0), view(1)]
    preds = [pred(0, 0.9), pred(1, 0.8), pred(30, 0.7)]
    samples, merged = merge_tta_predictions(views, preds, iou_thr=0.5)
    assert [s.img_id for s in samples] == [0, 1]
    assert [len(m) for m in merged] == [1, 1]  # the overlapping duplicate was suppressed
    assert merged[0].scores.item() == pytest.approx(0.9)


def test_tta_pipeline_replaces_resize_and_following_transforms():
    pipeline = [
        {"type": "LoadImage"},
        {"type": "Resize", "scale": [320, 320], "keep_ratio": True},
        {"type": "Normalize"},
        {"type": "Pad", "size_divisor": 32},
    ]
    out = tta_pipeline(pipeline, scales=[(256, 256), (384, 384)], flip=True)
    assert out[0] == {"type": "LoadImage"}
    assert out[1]["type"] == "TestTimeAug"
    assert out[1]["scales"] == [[256, 256], [384, 384]]
    assert [t["type"] for t in out[1]["transforms"]] == ["Normalize", "Pad"]
    assert tta_pipeline(pipeline)[1]["scales"] == [[320, 320]]
    no_resize = tta_pipeline([{"type": "LoadImage"}, {"type": "Normalize"}])
    assert no_resize[1] == {
        "type": "TestTimeAug",
        "scales": [],
        "flip": True,
        "keep_ratio": True,
        "transforms": [{"type": "Normalize"}],
    }
    with pytest.raises(ConfigError, match=r"pipeline\[1\]: expected a table"):
        tta_pipeline([{"type": "LoadImage"}, "Normalize"])


def test_tta_without_scales_keeps_the_loaded_size(paint, rng):
    views = TestTimeAug(scales=[], flip=True)(paint.make((40, 50), [(1, 1, 9, 9)], [0]), rng)
    assert [(v.img_shape, v.scale_factor, v.flip) for v in views] == [
        ((40, 50), (1.0, 1.0), False),
        ((40, 50), (1.0, 1.0), True),
    ]


def test_views_only_from_last_transform(paint, rng):
    tta = TestTimeAug(scales=[(32, 32)], flip=False)
    with pytest.raises(DataError, match="last transform"):
        Pipeline([tta, Pad()])(paint.make((40, 40), [(1, 1, 9, 9)], [0]), rng)


class Invert:
    """A third-party style transform without the rng parameter."""

    def __call__(self, sample):
        sample.image = 255 - sample.image
        return sample


def test_pipeline_accepts_transforms_without_rng(paint, rng):
    sample = paint.make((40, 40), [(1, 1, 9, 9)], [0])
    original = sample.image.clone()
    out = Pipeline([Invert(), RandomFlip(prob=1.0)])(sample, rng)
    assert torch.equal(out.image, (255 - original).flip(2))
    mosaic = Pipeline([Invert(), Mosaic(img_scale=(40, 40), pad_value=0.0)])
    source = ListSource([paint.make((40, 40), [(2, 2, 8, 8)], [1], img_id=i) for i in range(3)])
    assert len(mosaic(paint.make((40, 40), [(1, 1, 9, 9)], [0]), rng, source).gt) >= 1
