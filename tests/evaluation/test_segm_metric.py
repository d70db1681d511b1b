"""CocoMetric mask AP (``metric = "segm"``) against an independent pycocotools evaluation of a
ground-truth file written here and the dumped results, on random polygons and masks."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from core.errors import ConfigError, DataError
from core.evaluation.coco_metric import STAT_KEYS, CocoMetric, stat_keys
from core.evaluation.records import record_from_sample
from core.masks import PolygonMasks
from core.structures import DetSample, Instances

CLASSES = ("disc", "star", "bar")
CAT_IDS = [1, 2, 3]  # label + 1: what CocoMetric uses without ann_file
HEIGHT, WIDTH = 120, 160
SCALE = 0.5  # the test pipeline's resize: ground truth is stored at half size, flipped


def random_polygon(rng: np.random.Generator) -> np.ndarray:
    """A star-shaped polygon (``(K, 2)`` original pixels) of random size and place, on a
    quarter-pixel grid (exact in float32 through the resize and flip and back)."""
    count = int(rng.integers(5, 12))
    angles = np.sort(rng.uniform(0, 2 * np.pi, count))
    radius = rng.uniform(4, 40) * rng.uniform(0.5, 1.0, count)
    cx, cy = rng.uniform(10, WIDTH - 10), rng.uniform(10, HEIGHT - 10)
    points = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)
    return np.round(np.clip(points, 0, [WIDTH, HEIGHT]) * 4) / 4


def rasterise(polygons: list[np.ndarray]) -> np.ndarray:
    rle = mask_utils.merge(mask_utils.frPyObjects(
        [p.reshape(-1).astype(np.float64).tolist() for p in polygons], HEIGHT, WIDTH))
    return mask_utils.decode(rle).astype(bool)


def to_network_frame(polygons: list[list[np.ndarray]]) -> PolygonMasks:
    """Original-pixel polygons as the test pipeline stores them: resized, then flipped."""
    shape = (round(HEIGHT * SCALE), round(WIDTH * SCALE))
    return PolygonMasks([[p.astype(np.float32) for p in parts] for parts in polygons],
                        (HEIGHT, WIDTH)).rescale(SCALE, SCALE, shape).flip("horizontal")


def hull(polygons: list[np.ndarray]) -> list[float]:
    points = np.concatenate(polygons)
    return [*points.min(0).tolist(), *points.max(0).tolist()]


def network_boxes(boxes: list[list[float]]) -> torch.Tensor:
    """Original xyxy boxes resized and flipped like :func:`to_network_frame`."""
    scaled = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4) * SCALE
    width = round(WIDTH * SCALE)
    return torch.stack([width - scaled[:, 2], scaled[:, 1], width - scaled[:, 0],
                        scaled[:, 3]], dim=1)


def make_case(seed: int, num_images: int = 8):
    """``(samples, gt dict)``: per image 1-4 instances (some of two parts), sometimes a crowd
    region; predictions are the gt masks with pixels flipped, some relabelled, plus false
    positives; the gt dict is the same ground truth in COCO polygons."""
    rng = np.random.default_rng(seed)
    samples, images, annotations = [], [], []
    for img_id in range(1, num_images + 1):
        images.append({"id": img_id, "width": WIDTH, "height": HEIGHT})
        gt_polys, gt_labels, crowd_polys, crowd_labels = [], [], [], []
        for _ in range(rng.integers(1, 5)):
            gt_polys.append([random_polygon(rng) for _ in range(rng.integers(1, 3))])
            gt_labels.append(int(rng.integers(0, 3)))
        if rng.random() < 0.4:
            crowd_polys.append([random_polygon(rng)])
            crowd_labels.append(int(rng.integers(0, 3)))
        for polys, labels, crowd in ((gt_polys, gt_labels, 0), (crowd_polys, crowd_labels, 1)):
            for parts, label in zip(polys, labels, strict=True):
                x0, y0, x1, y1 = hull(parts)
                annotations.append({
                    "id": len(annotations) + 1, "image_id": img_id,
                    "category_id": CAT_IDS[label], "iscrowd": crowd,
                    "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                    "segmentation": [p.reshape(-1).tolist() for p in parts]})
        pred_masks, pred_labels = [], []
        for parts, label in zip(gt_polys + crowd_polys, gt_labels + crowd_labels, strict=True):
            mask = rasterise(parts)
            mask ^= rng.random(mask.shape) < rng.uniform(0, 0.01)  # scattered wrong pixels
            mask[: int(rng.integers(0, HEIGHT // 3))] = False  # a cut-off top
            pred_masks.append(mask)
            pred_labels.append(label if rng.random() > 0.15 else (label + 1) % 3)
        for _ in range(rng.integers(0, 3)):
            pred_masks.append(rasterise([random_polygon(rng)]))
            pred_labels.append(int(rng.integers(0, 3)))
        masks = torch.from_numpy(np.stack(pred_masks))
        pred_boxes = [hull([np.argwhere(m)[:, ::-1].astype(np.float64)]) if m.any()
                      else [0.0] * 4 for m in pred_masks]
        pred = Instances(torch.tensor(pred_boxes, dtype=torch.float32),
                         torch.tensor(pred_labels), torch.from_numpy(
                             rng.uniform(0.05, 1, len(pred_labels))).float(), masks)
        gt = Instances(network_boxes([hull(p) for p in gt_polys]), torch.tensor(gt_labels),
                       masks=to_network_frame(gt_polys))
        ignore = Instances(network_boxes([hull(p) for p in crowd_polys]),
                           torch.tensor(crowd_labels, dtype=torch.int64),
                           masks=to_network_frame(crowd_polys))
        samples.append(DetSample(
            img_id=img_id, ori_shape=(HEIGHT, WIDTH),
            img_shape=(round(HEIGHT * SCALE), round(WIDTH * SCALE)),
            scale_factor=(SCALE, SCALE), flip=True, flip_direction="horizontal",
            gt=gt, ignore=ignore, pred=pred))
    categories = [{"id": i, "name": n} for i, n in zip(CAT_IDS, CLASSES, strict=True)]
    return samples, {"images": images, "annotations": annotations, "categories": categories}


def independent_stats(gt_path, results_path, iou_type):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        evaluator = COCOeval(gt, gt.loadRes(str(results_path)), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def evaluate(samples, **options):
    metric = CocoMetric(**options)
    metric.dataset_meta = {"classes": CLASSES}
    metric.process(samples[:3])
    metric.process(samples[3:])
    return metric, metric.evaluate()


@pytest.mark.parametrize("backend", ["pycocotools", "faster_coco_eval"])
@pytest.mark.parametrize("with_ann_file", [False, True])
def test_segm_metric_equals_pycocotools_on_the_dumped_results(tmp_path, backend, with_ann_file):
    if backend == "faster_coco_eval":
        pytest.importorskip("faster_coco_eval")
    samples, content = make_case(seed=3)
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(content))
    prefix = tmp_path / "out" / "run"
    metric, values = evaluate(samples, metric=["bbox", "segm"], backend=backend,
                              outfile_prefix=str(prefix),
                              ann_file=str(gt_path) if with_ann_file else "")
    segm = independent_stats(gt_path, f"{prefix}.segm.json", "segm")
    bbox = independent_stats(gt_path, f"{prefix}.bbox.json", "bbox")
    assert 0.2 < segm[0] < 0.95  # a real, imperfect result
    assert segm[1] != bbox[1]  # masks, not boxes, were compared
    for key, index in stat_keys("segm").items():
        assert values[f"coco/{key}"] == pytest.approx(segm[index], abs=1e-12), key
    for key, index in STAT_KEYS.items():
        assert values[f"coco/{key}"] == pytest.approx(bbox[index], abs=1e-12), key
    assert {f"coco/segm_AP_{name}" for name in CLASSES} <= values.keys()
    assert "star" in metric.tables["segm"] and "star" in metric.tables["bbox"]


def test_dumped_segm_results_are_the_predicted_masks(tmp_path):
    samples, _ = make_case(seed=4, num_images=3)
    evaluate(samples, metric="segm", outfile_prefix=str(tmp_path / "run"))
    dumped = json.loads((tmp_path / "run.segm.json").read_text())
    assert not (tmp_path / "run.bbox.json").exists()
    expected = [m for s in samples for m in s.pred.masks.numpy()]
    assert len(dumped) == len(expected)
    for entry, mask in zip(dumped, expected, strict=True):
        assert set(entry) == {"image_id", "category_id", "segmentation", "score"}
        assert entry["segmentation"]["size"] == [HEIGHT, WIDTH]
        assert isinstance(entry["segmentation"]["counts"], str)
        np.testing.assert_array_equal(mask_utils.decode(entry["segmentation"]), mask)


def test_ground_truth_masks_reach_the_original_image(tmp_path):
    """The samples' flipped, resized polygons come back as the original polygons' pixels."""
    samples, content = make_case(seed=5, num_images=2)
    record = record_from_sample(samples[0], with_masks=True)
    originals = [a for a in content["annotations"] if a["image_id"] == 1 and not a["iscrowd"]]
    assert len(record.gt_masks) == len(originals) > 0
    for rle, annotation in zip(record.gt_masks, originals, strict=True):
        parts = [np.asarray(p).reshape(-1, 2) for p in annotation["segmentation"]]
        np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), rasterise(parts))
    assert record_from_sample(samples[0]).gt_masks is None  # only when asked for


def test_bbox_only_values_do_not_change_with_masks_present():
    samples, _ = make_case(seed=6)
    _, with_masks = evaluate(samples)
    for sample in samples:
        sample.gt.masks = sample.ignore.masks = sample.pred.masks = None
    _, without = evaluate(samples)
    assert with_masks == without
    assert not any(key.startswith("coco/segm") for key in with_masks)


def test_segm_errors_name_the_missing_masks():
    samples, _ = make_case(seed=7, num_images=2)
    samples[1].pred.masks = None
    with pytest.raises(DataError, match="image 2: the predictions have no masks"):
        evaluate(samples, metric="segm")
    samples, _ = make_case(seed=7, num_images=2)
    samples[0].gt.masks = None
    with pytest.raises(ConfigError, match="needs ground-truth masks, image 1"):
        evaluate(samples, metric="segm")
    samples[0].pred.masks = samples[0].pred.masks[:, :, :-1]
    with pytest.raises(DataError, match=r"\(N, 120, 160\) bool tensor"):
        evaluate(samples, metric="segm")
    with pytest.raises(ConfigError, match="metric"):
        CocoMetric(metric=["segm", "keypoints"])
