"""VocMetric: perfect predictions, a hand-computed case, difficult boxes, both AP modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import ConfigError
from core.evaluation.voc_metric import VocMetric, average_precision
from core.structures import DetSample, Instances


def boxes(*rows):
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def sample(img_id, gt, gt_labels, pred, pred_labels, scores, ignore=(), ignore_labels=()):
    return DetSample(
        img_id=img_id,
        ori_shape=(100, 100),
        gt=Instances(boxes=boxes(*gt), labels=torch.tensor(gt_labels, dtype=torch.int64)),
        ignore=Instances(
            boxes=boxes(*ignore), labels=torch.tensor(ignore_labels, dtype=torch.int64)
        ),
        pred=Instances(
            boxes=boxes(*pred),
            labels=torch.tensor(pred_labels, dtype=torch.int64),
            scores=torch.tensor(scores, dtype=torch.float32),
        ),
    )


def evaluate(samples, classes=("a", "b"), **kwargs):
    metric = VocMetric(**kwargs)
    metric.dataset_meta = {"classes": classes}
    metric.process(samples)
    return metric.evaluate()


A, B, C = (0, 0, 10, 10), (20, 20, 40, 40), (50, 50, 90, 90)
SHIFTED_A = (0, 0, 10, 14)  # IoU with A = 100/140 = 0.71
POOR_B = (20, 20, 40, 60)  # IoU with B = 400/800 = 0.5 (counts, >= threshold)
MISS = (60, 0, 70, 10)


def test_perfect_predictions_give_one():
    samples = [
        sample(1, [A, B], [0, 1], [A, B], [0, 1], [0.9, 0.8]),
        sample(2, [C], [0], [C], [0], [0.7]),
    ]
    for mode in ("area", "11points"):
        values = evaluate(samples, eval_mode=mode)
        assert values == {"voc/AP_a": 1.0, "voc/AP_b": 1.0, "voc/mAP": 1.0}


def test_hand_computed_case():
    # class a: 3 ground-truth boxes (A in image 1, A and C in image 2).
    # detections by score: 0.9 A@1 TP, 0.8 MISS@1 FP, 0.7 SHIFTED_A@2 TP, 0.6 A@1 again FP
    # (duplicate), C@2 never found.
    # precision: 1, 1/2, 2/3, 2/4 at recall 1/3, 1/3, 2/3, 2/3.
    # area: 1/3 * 1 + 1/3 * 2/3 = 5/9.
    # 11 points: recall >= 0, .1, .2, .3 -> 1 (4 points); .4, .5, .6 -> 2/3 (3 points);
    # .7 ... 1 -> 0:  (4 + 2) / 11 = 6/11.
    # class b: one ground truth found with IoU 0.5 -> AP 1.
    samples = [
        sample(1, [A, B], [0, 1], [A, MISS, A, POOR_B], [0, 0, 0, 1], [0.9, 0.8, 0.6, 0.5]),
        sample(2, [A, C], [0, 0], [SHIFTED_A], [0], [0.7]),
    ]
    area = evaluate(samples, eval_mode="area")
    assert area["voc/AP_a"] == pytest.approx(5 / 9)
    assert area["voc/AP_b"] == pytest.approx(1.0)
    assert area["voc/mAP"] == pytest.approx((5 / 9 + 1) / 2)
    points = evaluate(samples, eval_mode="11points")
    assert points["voc/AP_a"] == pytest.approx(6 / 11)
    stricter = evaluate(samples, iou_thr=0.75)
    assert stricter["voc/AP_b"] == 0.0 and stricter["voc/AP_a"] < area["voc/AP_a"]


def test_difficult_boxes_are_neither_missed_nor_false_positives():
    with_difficult = [
        sample(1, [A], [0], [A, C], [0, 0], [0.9, 0.95], ignore=[C], ignore_labels=[0])
    ]
    assert evaluate(with_difficult, classes=("a",))["voc/mAP"] == 1.0
    without = [sample(1, [A], [0], [A, C], [0, 0], [0.9, 0.95])]
    assert evaluate(without, classes=("a",))["voc/mAP"] == pytest.approx(0.5)
    only_difficult = [
        sample(1, [], [], [], [], [], ignore=[C], ignore_labels=[1]),
        sample(2, [A], [0], [A], [0], [0.5]),
    ]
    values = evaluate(only_difficult)
    assert values["voc/mAP"] == 1.0  # class b has no counted ground truth: not averaged


def test_average_precision_modes():
    recall = np.array([0.5, 0.5, 1.0])
    precision = np.array([1.0, 0.5, 2 / 3])
    assert average_precision(recall, precision, "area") == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision(recall, precision, "11points") == pytest.approx(
        (6 * 1.0 + 5 * 2 / 3) / 11
    )
    assert average_precision(np.array([]), np.array([]), "area") == 0.0


def test_missing_classes_and_predictions_are_reported():
    metric = VocMetric()
    with pytest.raises(ConfigError, match="dataset_meta"):
        metric.evaluate()
    with pytest.raises(ValueError, match="no predictions"):
        metric.process([DetSample(img_id=3)])
