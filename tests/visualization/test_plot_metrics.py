"""Precision-recall curves and confusion matrix computed from hand-made detections."""

import numpy as np
import pytest
import torch
from PIL import Image

from core.structures import DetSample, Instances
from core.visualization.plots import (
    compute_confusion_matrix,
    compute_pr_curves,
    save_confusion_matrix,
    save_pr_curves,
)


def instances(boxes, labels, scores=None) -> Instances:
    return Instances(
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        torch.tensor(labels, dtype=torch.int64),
        None if scores is None else torch.tensor(scores, dtype=torch.float32),
    )


def sample(gt, pred, img_id=0, ignore=None, **meta) -> DetSample:
    return DetSample(img_id=img_id, gt=gt, pred=pred, ignore=ignore or Instances(), **meta)


BOX_A = [0, 0, 10, 10]
BOX_B = [20, 20, 30, 30]
BOX_C = [40, 40, 50, 50]
ELSEWHERE = [60, 0, 70, 10]


def test_pr_curve_follows_voc_matching():
    samples = [
        sample(
            instances([BOX_A, BOX_B], [0, 0]),
            # 0.9 hits A, 0.8 is a false box, 0.6 hits A again (duplicate = false positive)
            instances([BOX_A, ELSEWHERE, BOX_A], [0, 0, 0], [0.9, 0.8, 0.6]),
        ),
        sample(instances([BOX_C], [0]), instances([BOX_C], [0], [0.7]), img_id=1),
    ]
    (curve,) = compute_pr_curves(samples, ("thing",))
    assert curve.num_gt == 3
    assert np.allclose(curve.scores, [0.9, 0.8, 0.7, 0.6])
    assert np.allclose(curve.precision, [1, 1 / 2, 2 / 3, 2 / 4])
    assert np.allclose(curve.recall, [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert curve.ap == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)


def test_detections_on_ignore_regions_count_as_neither():
    samples = [
        sample(
            instances([BOX_A], [0]),
            instances([BOX_A, BOX_B], [0, 0], [0.9, 0.95]),
            ignore=instances([BOX_B], [0]),
        )
    ]
    (curve,) = compute_pr_curves(samples, ("thing",))
    assert np.allclose(curve.precision, [1.0]) and curve.ap == pytest.approx(1.0)
    matrix = compute_confusion_matrix(samples, 1)
    assert matrix.tolist() == [[1, 0], [0, 0]]


def test_ground_truth_is_mapped_to_the_original_frame_before_matching():
    # BOX_A of a 100x100 image, seen after a 0.5 resize and a horizontal flip: [45, 0, 50, 5]
    def resized_flipped(pred_box):
        return sample(
            instances([[45, 0, 50, 5]], [0]), instances([pred_box], [0], [0.9]),
            ori_shape=(100, 100), img_shape=(50, 50), scale_factor=(0.5, 0.5), flip=True,
            flip_direction="horizontal",
        )

    (curve,) = compute_pr_curves([resized_flipped(BOX_A)], ("thing",))
    assert curve.ap == pytest.approx(1.0)
    (unmapped,) = compute_pr_curves([resized_flipped([90, 0, 100, 10])], ("thing",))
    assert unmapped.ap == 0.0


def test_confusion_matrix_counts_confusions_misses_and_false_positives():
    samples = [
        sample(
            instances([BOX_A, BOX_B, BOX_C], [0, 1, 1]),
            instances(
                [BOX_A, BOX_B, ELSEWHERE, BOX_C],
                [1, 1, 0, 0],
                [0.9, 0.8, 0.7, 0.1],  # the 0.1 detection of C is below score_thr
            ),
        )
    ]
    matrix = compute_confusion_matrix(samples, 2, iou_thr=0.5, score_thr=0.3)
    assert matrix.tolist() == [
        [0, 1, 0],  # A (class 0) found as class 1
        [0, 1, 1],  # B found as class 1, C missed
        [1, 0, 0],  # the detection ELSEWHERE is a false class-0 box
    ]


def test_a_class_without_ground_truth_has_nan_ap():
    samples = [sample(instances([BOX_A], [0]), instances([BOX_A], [0], [0.9]))]
    first, second = compute_pr_curves(samples, ("a", "b"))
    assert first.ap == pytest.approx(1.0)
    assert second.num_gt == 0 and np.isnan(second.ap)


def test_bad_samples_raise_clear_errors():
    with pytest.raises(ValueError, match=r"img_id=4 \(x.jpg\) has no predictions"):
        compute_pr_curves([DetSample(img_id=4, img_path="x.jpg")], ("a",))
    bad_label = sample(instances([BOX_A], [3]), instances([BOX_A], [0], [0.9]))
    with pytest.raises(ValueError, match=r"gt label outside 0..0"):
        compute_confusion_matrix([bad_label], 1)


def test_plots_are_written_as_png(tmp_path):
    samples = [sample(instances([BOX_A], [0]), instances([BOX_A, BOX_B], [0, 1], [0.9, 0.5]))]
    curves = save_pr_curves(samples, ("a", "b"), tmp_path / "plots" / "pr.png")
    matrix = save_confusion_matrix(samples, ("a", "b"), tmp_path / "plots" / "cm.png")
    assert [c.class_name for c in curves] == ["a", "b"]
    assert matrix.tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 0]]
    for name in ("pr.png", "cm.png"):
        with Image.open(tmp_path / "plots" / name) as image:
            assert image.format == "PNG" and min(image.size) >= 300


def test_ap_agrees_with_pycocotools_ap50():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(0)
    samples, images, annotations, results = [], [], [], []
    for img_id in range(1, 9):
        xy = rng.uniform(0, 150, (3, 2))
        wh = rng.uniform(20, 60, (3, 2))
        gt_boxes = np.concatenate([xy, xy + wh], axis=1)
        gt_labels = rng.integers(0, 2, 3)
        jitter = rng.normal(0, 8, (3, 4))
        extra = np.concatenate([xy[:1] + 40, xy[:1] + 80], axis=1)
        pred_boxes = np.concatenate([gt_boxes + jitter, extra])
        pred_labels = np.concatenate([gt_labels, [0]])
        scores = rng.uniform(0.05, 1.0, 4)
        samples.append(sample(instances(gt_boxes.tolist(), gt_labels.tolist()),
                              instances(pred_boxes.tolist(), pred_labels.tolist(),
                                        scores.tolist()), img_id=img_id))
        images.append({"id": img_id, "width": 300, "height": 300})
        for box, label in zip(gt_boxes, gt_labels, strict=True):
            x1, y1, x2, y2 = box.tolist()
            annotations.append({"id": len(annotations) + 1, "image_id": img_id,
                                "category_id": int(label) + 1, "iscrowd": 0,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)})
        for box, label, score in zip(pred_boxes, pred_labels, scores, strict=True):
            x1, y1, x2, y2 = box.tolist()
            results.append({"image_id": img_id, "category_id": int(label) + 1,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations,
                    "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    coco.createIndex()
    evaluator = COCOeval(coco, coco.loadRes(results), "bbox")
    evaluator.params.iouThrs = np.array([0.5])
    evaluator.evaluate()
    evaluator.accumulate()
    precision = evaluator.eval["precision"][0, :, :, 0, -1]  # (recall points, classes)
    coco_ap = precision.mean(axis=0)
    ours = [c.ap for c in compute_pr_curves(samples, ("a", "b"), iou_thr=0.5)]
    # COCO samples precision at 101 recall points; the all-point area differs only slightly
    assert np.allclose(ours, coco_ap, atol=0.02), (ours, coco_ap)
