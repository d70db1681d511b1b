"""LetterResize and YOLOv5HSVRandomAug (plugdet-yolo), and RandomAffine (built in)."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch
from plugdet_yolo.transforms import LetterResize, YOLOv5HSVRandomAug
from plugdet_yolo.transforms.hsv import hsv_to_rgb, rgb_to_hsv

from core.data.transforms.affine import RandomAffine
from core.data.transforms.base import Pipeline
from core.data.transforms.geometric import RandomFlip
from core.data.transforms.mix import Mosaic
from core.evaluation.records import record_from_sample
from core.models.detectors.base import to_original
from core.structures import DetSample, Instances

BOXES = [(5, 8, 25, 30), (40, 10, 70, 26), (12, 40, 60, 58)]
LABELS = [0, 1, 2]

# ---- LetterResize ---------------------------------------------------------------------------


def test_letter_resize_centres_the_image_and_moves_boxes(paint, rng):
    sample = paint.make((64, 80), BOXES, LABELS)
    out = LetterResize(scale=(96, 96))(sample, rng)
    # factor min(96/64, 96/80) = 1.2: 77x96 (rounded) in the middle of 96x96, 19 rows of padding
    assert out.image.shape == (3, 96, 96) and out.img_shape == out.pad_shape == (96, 96)
    assert out.scale_factor == (96 / 80, 77 / 64) and out.pad_offset == (0.0, 9.0)
    assert (out.image[:, :9] == 114).all() and (out.image[:, 86:] == 114).all()
    assert (out.image[:, 9:86] != 114).all()
    expected = [[x1 * 1.2, y1 * 77 / 64 + 9, x2 * 1.2, y2 * 77 / 64 + 9]
                for x1, y1, x2, y2 in BOXES]
    torch.testing.assert_close(out.gt.boxes, torch.tensor(expected))
    out.image[out.image == 114] = 0  # the painting's background is black
    paint.check(out, tol_px=1.0)


def test_letter_resize_without_scale_up_only_pads(paint, rng):
    out = LetterResize(scale=(101, 90), allow_scale_up=False)(paint.make((64, 80), BOXES, LABELS),
                                                              rng)
    assert out.scale_factor == (1.0, 1.0) and out.pad_offset == (5.0, 18.0)  # odd rows: 18 + 19
    torch.testing.assert_close(out.gt.boxes[0], torch.tensor([10.0, 26.0, 30.0, 48.0]))


def _round_trip_cases(rng):
    for _ in range(30):
        h, w = (int(v) for v in rng.integers(5, 200, 2))
        target = (int(rng.integers(8, 160)), int(rng.integers(8, 160)))
        x = np.sort(rng.uniform(0, w, (6, 2)), 1)
        y = np.sort(rng.uniform(0, h, (6, 2)), 1)
        boxes = np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], 1)
        yield (h, w), target, torch.tensor(boxes, dtype=torch.float32)


def test_letterbox_round_trip_maps_predictions_back_exactly(rng):
    for (h, w), target, boxes in _round_trip_cases(rng):
        sample = DetSample(ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w),
                           image=torch.zeros((3, h, w), dtype=torch.uint8),
                           gt=Instances(boxes, torch.zeros(len(boxes), dtype=torch.int64)))
        out = LetterResize(scale=target)(sample, rng)
        # a prediction equal to the transformed ground truth comes back as the original box
        pred = Instances(out.gt.boxes.clone(), out.gt.labels, torch.ones(len(boxes)))
        (mapped,) = to_original([pred], [out])
        torch.testing.assert_close(mapped.boxes, boxes, atol=1e-3, rtol=0)
        torch.testing.assert_close(out.boxes_to_original(out.gt.boxes), boxes, atol=1e-3,
                                   rtol=0)


def test_letterbox_then_flip_round_trip_through_the_metric_records(paint, rng):
    sample = paint.make((64, 80), BOXES, LABELS)
    out = Pipeline([LetterResize(scale=(97, 96)), RandomFlip(prob=1.0)])(sample, rng)
    out.pred = Instances.empty(with_scores=True)
    torch.testing.assert_close(torch.from_numpy(record_from_sample(out).gt_boxes),
                               torch.tensor(BOXES, dtype=torch.float32), atol=1e-4, rtol=0)


# ---- RandomAffine ---------------------------------------------------------------------------


def test_affine_zoom_about_the_centre_by_hand(paint, rng):
    # no shift, no rotation, scale 2: x -> 2 * (x - 40) + 40, y -> 2 * (y - 32) + 32
    affine = RandomAffine(max_translate_ratio=0.0, scaling_ratio_range=(2.0, 2.0),
                          pad_value=0, min_area_ratio=0.0)
    out = affine(paint.make((64, 80), [(30, 24, 50, 40), (0, 0, 20, 20)], [0, 1]), rng)
    assert out.image.shape == (3, 64, 80) and out.ori_shape == out.img_shape == (64, 80)
    torch.testing.assert_close(out.gt.boxes, torch.tensor([[20.0, 16.0, 60.0, 48.0]]))
    assert out.gt.labels.tolist() == [0]  # the corner box left the image entirely
    paint.check(out, tol_px=1.0)  # bilinear blends the one-pixel rim of a 2x enlargement


def test_affine_shift_by_hand_and_pad_value(paint, rng):
    affine = RandomAffine(max_translate_ratio=0.0, scaling_ratio_range=(1.0, 1.0),
                          border=(8, 4))
    out = affine(paint.make((64, 80), BOXES, LABELS), rng)
    # output 80x88; the image is centred: shifted by (4, 8); the border is pad_value
    assert out.image.shape == (3, 80, 88)
    torch.testing.assert_close(out.gt.boxes, torch.tensor(BOXES, dtype=torch.float32)
                               + torch.tensor([4.0, 8.0, 4.0, 8.0]))
    assert (out.image[:, :8] == 114).all() and (out.image[:, :, :4] == 114).all()
    out.image[out.image == 114] = 0
    paint.check(out)


def _reference_boxes(boxes, matrix, scale, out_shape, affine):
    """Per-box loop: warp the 4 corners, enclose, clip, filter as the references do."""
    kept, keep_index = [], []
    out_h, out_w = out_shape
    for index, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        xs, ys = [], []
        for x, y in ((x1, y1), (x2, y1), (x1, y2), (x2, y2)):
            xs.append(matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2])
            ys.append(matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2])
        box = [min(max(min(xs), 0), out_w), min(max(min(ys), 0), out_h),
               min(max(max(xs), 0), out_w), min(max(max(ys), 0), out_h)]
        w2, h2 = box[2] - box[0], box[3] - box[1]
        area = w2 * h2 / ((x2 - x1) * (y2 - y1) * scale**2 + 1e-16)
        aspect = max(w2 / (h2 + 1e-16), h2 / (w2 + 1e-16))
        if (w2 > affine.min_bbox_size and h2 > affine.min_bbox_size
                and area > affine.min_area_ratio and aspect < affine.max_aspect_ratio):
            kept.append(box)
            keep_index.append(index)
    return torch.tensor(kept, dtype=torch.float32).reshape(-1, 4), keep_index


def test_affine_boxes_match_a_per_box_reference_on_random_inputs():
    affine = RandomAffine(max_rotate_degree=30, max_translate_ratio=0.2,
                          scaling_ratio_range=(0.4, 1.6), max_shear_degree=10, border=(-6, 5))
    rng = np.random.default_rng(1)
    dropped = 0
    for seed in range(20):
        h, w = (int(v) for v in rng.integers(30, 90, 2))
        x = np.sort(rng.uniform(-5, w + 5, (8, 2)), 1)
        y = np.sort(rng.uniform(-5, h + 5, (8, 2)), 1)
        x[:, 1] += 0.5
        y[:, 1] += 0.5
        boxes = torch.tensor(np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], 1),
                             dtype=torch.float32)
        labels = torch.arange(8)
        sample = DetSample(ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w),
                           image=torch.zeros((3, h, w), dtype=torch.uint8),
                           gt=Instances(boxes, labels))
        matrix, scale = affine.draw_matrix(np.random.default_rng(seed), (h, w))
        out = affine(sample, np.random.default_rng(seed))
        expected, keep = _reference_boxes(boxes, matrix, scale, (h - 12, w + 10), affine)
        torch.testing.assert_close(out.gt.boxes, expected, atol=1e-3, rtol=0)
        assert out.gt.labels.tolist() == keep
        dropped += 8 - len(keep)
    assert 0 < dropped < 160  # the filters did something, and not everything


def test_rotated_box_encloses_the_rotated_pixels(paint):
    affine = RandomAffine(max_rotate_degree=25, max_translate_ratio=0.05, pad_value=0,
                          scaling_ratio_range=(0.8, 1.2))
    for seed in range(5):
        out = affine(paint.make((64, 80), BOXES, LABELS), np.random.default_rng(seed))
        for box, label in zip(out.gt.boxes.tolist(), out.gt.labels.tolist(), strict=True):
            found = paint.box(out.image, label, tol=100.0)
            assert found is not None
            assert np.allclose(found, box, atol=2.0), (seed, label, found, box)


def test_affine_border_after_mosaic_returns_to_the_tile_size(paint, rng):
    pipeline = Pipeline([Mosaic(img_scale=(32, 40)), RandomAffine(border=(-16, -20))])

    class Source:
        def random_sample(self, rng, prepare):
            return prepare(paint.make((64, 80), BOXES, LABELS), rng)

    out = pipeline(paint.make((64, 80), BOXES, LABELS), rng, source=Source())
    assert out.image.shape == (3, 32, 40) and out.img_shape == (32, 40)
    assert ((out.gt.boxes >= 0) & (out.gt.boxes <= torch.tensor([40, 32, 40, 32]))).all()


def test_affine_is_a_pure_function_of_the_rng(paint):
    affine = RandomAffine(max_rotate_degree=10, max_shear_degree=5)
    a = affine(paint.make((64, 80), BOXES, LABELS), np.random.default_rng(7))
    b = affine(paint.make((64, 80), BOXES, LABELS), np.random.default_rng(7))
    assert torch.equal(a.image, b.image) and torch.equal(a.gt.boxes, b.gt.boxes)


# ---- YOLOv5HSVRandomAug ---------------------------------------------------------------------


def test_hsv_conversion_round_trips_and_matches_colorsys():
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 1, (3, 5, 7)).astype(np.float32)
    pixels[:, 0, 0] = 0.5  # grey: no hue, no saturation
    hsv = rgb_to_hsv(torch.from_numpy(pixels))
    for y in range(5):
        for x in range(7):
            expected = colorsys.rgb_to_hsv(*pixels[:, y, x].tolist())
            assert np.allclose(hsv[:, y, x].numpy(), expected, atol=1e-5)
    torch.testing.assert_close(hsv_to_rgb(hsv), torch.from_numpy(pixels), atol=1e-5, rtol=0)


def test_hsv_gains_by_hand():
    image = torch.tensor([[255, 0, 128], [0, 255, 128], [0, 0, 128]], dtype=torch.uint8)
    sample = DetSample(image=image.view(3, 1, 3).clone())

    class Fixed(YOLOv5HSVRandomAug):
        def draw_gains(self, rng):
            return np.array([1.0, 1.0, 0.5])

    out = Fixed()(sample, None)
    # value halved: red -> (128, 0, 0), green -> (0, 128, 0), grey 128 -> 64
    assert out.image.view(3, 3).tolist() == [[128, 0, 64], [0, 128, 64], [0, 0, 64]]


def test_hsv_aug_matches_a_per_pixel_colorsys_reference():
    aug = YOLOv5HSVRandomAug()
    assert aug.deltas.tolist() == [0.015, 0.7, 0.4]
    image = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (3, 6, 9), dtype=np.uint8))
    for seed in range(4):
        gains = aug.draw_gains(np.random.default_rng(seed))
        out = aug(DetSample(image=image.clone()), np.random.default_rng(seed)).image
        for y in range(6):
            for x in range(9):
                h, s, v = colorsys.rgb_to_hsv(*(image[:, y, x].double() / 255).tolist())
                rgb = colorsys.hsv_to_rgb((h * gains[0]) % 1.0, min(s * gains[1], 1.0),
                                          min(v * gains[2], 1.0))
                want = [round(c * 255) for c in rgb]
                got = out[:, y, x].tolist()
                assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 1, (got, want)


def test_hsv_aug_needs_uint8(rng):
    from core.errors import DataError

    with pytest.raises(DataError, match="needs a uint8 image"):
        YOLOv5HSVRandomAug()(DetSample(image=torch.zeros(3, 2, 2)), rng)
