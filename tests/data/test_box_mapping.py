"""The one mapping from network-input boxes back to the original image
(:meth:`DetSample.boxes_to_original`), checked by round trips through the test transforms and
through the detectors' post-processing, the metric records and test-time augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plugdet_yolo.transforms import LetterResize

from core.data.transforms.base import Pipeline
from core.data.transforms.geometric import Pad, RandomFlip, Resize
from core.data.transforms.tta import TestTimeAug, merge_tta_predictions
from core.evaluation.records import record_from_sample
from core.models.detectors.base import to_original
from core.structures import DetSample, Instances

DIRECTIONS = ["horizontal", "vertical", "diagonal"]


def _random_sample(rng: np.random.Generator) -> DetSample:
    """An image of random size with six random boxes inside it, labels 0 to 5 (and one
    ignore box)."""
    h, w = (int(v) for v in rng.integers(5, 200, 2))
    x = np.sort(rng.uniform(0, w, (7, 2)), 1)
    y = np.sort(rng.uniform(0, h, (7, 2)), 1)
    boxes = torch.tensor(np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], 1), dtype=torch.float32)
    return DetSample(ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w),
                     image=torch.zeros((3, h, w), dtype=torch.uint8),
                     gt=Instances(boxes[:6], torch.arange(6)),
                     ignore=Instances(boxes[6:], torch.tensor([1])))


def _test_pipeline(rng: np.random.Generator, direction: str | None) -> Pipeline:
    """Resize, LetterResize (random odd or even padding), RandomFlip, Pad, as a test
    pipeline may chain them."""
    resize = Resize(scale=(int(rng.integers(20, 300)), int(rng.integers(20, 300))))
    letterbox = LetterResize(scale=(int(rng.integers(8, 160)), int(rng.integers(8, 160))))
    flip = [] if direction is None else [RandomFlip(prob=1.0, direction=direction)]
    return Pipeline([resize, letterbox, *flip, Pad(size_divisor=32)])


def _perfect_prediction(sample: DetSample) -> Instances:
    """What a perfect detector's head returns: the sample's ground truth in network-input
    pixels, with scores."""
    return Instances(sample.gt.boxes.clone(), sample.gt.labels, torch.ones(len(sample.gt)))


@pytest.mark.parametrize("direction", [None, *DIRECTIONS])
def test_round_trip_through_the_test_transforms(direction):
    rng = np.random.default_rng(0)
    for _ in range(20):
        sample = _random_sample(rng)
        boxes, ignore = sample.gt.boxes.clone(), sample.ignore.boxes.clone()
        out = _test_pipeline(rng, direction)(sample, rng)
        assert out.flip == (direction is not None) and out.flip_direction == direction
        torch.testing.assert_close(out.boxes_to_original(out.gt.boxes), boxes, atol=1e-3, rtol=0)
        mapped = out.instances_to_original(out.ignore)
        torch.testing.assert_close(mapped.boxes, ignore, atol=1e-3, rtol=0)
        assert mapped.labels is out.ignore.labels


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_detections_of_a_flipped_test_image_come_back_unmirrored(direction):
    """The detectors' post-processing undoes the flip too, so predictions line up with the
    ground truth of the metric records."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        sample = _random_sample(rng)
        boxes = sample.gt.boxes.clone()
        out = _test_pipeline(rng, direction)(sample, rng)
        (pred,) = to_original([_perfect_prediction(out)], [out])
        torch.testing.assert_close(pred.boxes, boxes, atol=1e-3, rtol=0)
        out.pred = pred
        record = record_from_sample(out)
        torch.testing.assert_close(torch.from_numpy(record.pred_boxes), boxes, atol=1e-3, rtol=0)
        torch.testing.assert_close(torch.from_numpy(record.gt_boxes), boxes, atol=1e-3, rtol=0)


def test_detections_are_clipped_to_the_original_image_and_ground_truth_is_not():
    sample = DetSample(ori_shape=(50, 100), img_shape=(100, 150), scale_factor=(1.5, 2.0),
                       meta={"pad_offset": (3.0, 0.0)})
    boxes = torch.tensor([[-30.0, 20.0, 180.0, 99.0]])
    assert sample.boxes_to_original(boxes, clip=True).tolist() == [[0.0, 10.0, 100.0, 49.5]]
    assert sample.boxes_to_original(boxes).tolist() == [[-22.0, 10.0, 118.0, 49.5]]


def test_mapping_keeps_dtype_and_device_and_does_not_touch_the_input():
    sample = DetSample(ori_shape=(40, 40), img_shape=(80, 80), scale_factor=(2.0, 2.0),
                       flip=True, flip_direction="diagonal")
    boxes = torch.tensor([[10.0, 20.0, 30.0, 40.0]], dtype=torch.float64)
    mapped = sample.boxes_to_original(boxes)
    assert mapped.dtype == torch.float64 and boxes.tolist() == [[10.0, 20.0, 30.0, 40.0]]
    assert mapped.tolist() == [[25.0, 20.0, 35.0, 30.0]]
    assert sample.boxes_to_original(torch.zeros((0, 4))).shape == (0, 4)


def test_a_flip_without_direction_is_refused_everywhere():
    sample = DetSample(img_id=3, img_path="a.jpg", ori_shape=(40, 40), img_shape=(40, 40),
                       flip=True, gt=Instances(torch.tensor([[1.0, 2.0, 3.0, 4.0]]),
                                               torch.tensor([0])))
    sample.pred = Instances.empty(with_scores=True)
    message = r"sample img_id=3 \(a\.jpg\): flip is set but flip_direction is None"
    with pytest.raises(ValueError, match=message):
        record_from_sample(sample)
    with pytest.raises(ValueError, match=message):
        to_original([_perfect_prediction(sample)], [sample])


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_tta_views_of_a_letterbox_pipeline_map_back_exactly(direction):
    """``tta_pipeline`` puts the views' flip before a letterbox; with odd padding the
    letterbox must record the shift that the mapping (flip undone in ``img_shape``) needs."""
    rng = np.random.default_rng(2)
    for _ in range(20):
        sample = _random_sample(rng)
        boxes = sample.gt.boxes.clone()
        target = (int(rng.integers(8, 160)), int(rng.integers(8, 160)))
        tta = TestTimeAug(scales=[], flip=True, flip_direction=direction,
                          transforms=[LetterResize(scale=target), Pad(size_divisor=32)])
        views = tta(sample, rng)
        assert [v.flip for v in views] == [False, True]
        preds = to_original([_perfect_prediction(v) for v in views], views)
        for view, pred in zip(views, preds, strict=True):
            torch.testing.assert_close(pred.boxes, boxes, atol=1e-3, rtol=0)
            view.pred = pred
            view.meta["tta_group"] = 0  # as the loader's collate marks the views of one image
            record = record_from_sample(view)
            torch.testing.assert_close(torch.from_numpy(record.gt_boxes), boxes, atol=1e-3,
                                       rtol=0)
        _, (merged,) = merge_tta_predictions(views, preds, iou_thr=0.5)
        order = torch.argsort(merged.labels)
        assert merged.labels[order].tolist() == list(range(6))  # one box of each view pair
        torch.testing.assert_close(merged.boxes[order], boxes, atol=1e-3, rtol=0)

