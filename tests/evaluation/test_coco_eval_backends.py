"""The faster-coco-eval backend of CocoMetric against pycocotools (the reference).

Ground truth and detections come from ``bench/coco_like.py`` (COCO's category ids, box-size
split, crowd regions and empty images). The two libraries compute the same 12 ``stats``; they
are not bit-identical: faster-coco-eval sums precision in C++ in another order, so values may
differ in the last bit (observed: up to 6e-17), hence the 1e-12 tolerance.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from core.errors import ConfigError
from core.evaluation.coco_metric import CocoMetric
from core.plugins import get_registries
from core.structures import DetSample, Instances

faster_coco_eval = pytest.importorskip("faster_coco_eval")

BENCH = Path(__file__).resolve().parents[2] / "bench" / "coco_like.py"
NUM_IMAGES = 200
SEED = 5


def _load_generator():
    spec = importlib.util.spec_from_file_location("coco_like", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("coco_like", module)
    spec.loader.exec_module(module)
    return module


coco_like = _load_generator()


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """``(ground truth, instances.json path, detections list)``; every 7th image has no
    detections, and the set has empty images and crowd regions."""
    root = tmp_path_factory.mktemp("coco_like")
    gt = coco_like.generate_ground_truth(NUM_IMAGES, seed=SEED, pool=16)
    coco_like.write_instances(gt, root / "instances.json")
    detections = coco_like.generate_detections(gt, NUM_IMAGES, seed=SEED, per_image=20)
    without = set(gt.image_ids[::7].tolist())
    kept = [d for d in coco_like.detection_dicts(detections) if d["image_id"] not in without]
    counts = np.diff(gt.first_box)
    assert (counts == 0).sum() >= 2 and gt.crowd.sum() >= 5 and counts.max() > 20
    return gt, root / "instances.json", kept


def _stats(coco_class, eval_class, ann_file, detections, **options):
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = coco_class(str(ann_file))
        evaluator = eval_class(coco_gt, coco_gt.loadRes([dict(d) for d in detections]), "bbox",
                               **options)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats, dtype=np.float64), evaluator


def test_both_libraries_give_the_same_twelve_stats(generated):
    _, ann_file, detections = generated
    reference, ref_eval = _stats(COCO, COCOeval, ann_file, detections)
    fast, fast_eval = _stats(faster_coco_eval.COCO, faster_coco_eval.COCOeval_faster, ann_file,
                             detections, print_function=print)
    assert reference.shape == fast.shape == (12,)
    assert np.all(reference > 0.05) and np.all(reference < 0.95)  # a real, imperfect result
    np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-12)
    precision = ref_eval.eval["precision"]
    assert precision.shape == fast_eval.eval["precision"].shape == (10, 101, 80, 4, 3)
    np.testing.assert_allclose(fast_eval.eval["precision"], precision, rtol=0, atol=1e-12)


def _samples(gt, detections):
    """One sample per image (ground truth from the file) with the detections as ``pred``."""
    label_of = {c["id"]: label for label, c in enumerate(coco_like.coco_categories())}
    by_image: dict[int, list[dict]] = {int(i): [] for i in gt.image_ids}
    for detection in detections:
        by_image[detection["image_id"]].append(detection)
    samples = []
    for index, image_id in enumerate(gt.image_ids.tolist()):
        found = by_image[image_id]
        boxes = torch.tensor([d["bbox"] for d in found], dtype=torch.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        pred = Instances(boxes=boxes, labels=torch.tensor([label_of[d["category_id"]]
                                                           for d in found], dtype=torch.long),
                         scores=torch.tensor([d["score"] for d in found]))
        shape = (int(gt.heights[index]), int(gt.widths[index]))
        samples.append(DetSample(img_id=image_id, ori_shape=shape, img_shape=shape, pred=pred))
    return samples


def _metric_values(backend, ann_file, samples, prefix):
    metric = get_registries().build(
        "metric", {"type": "CocoMetric", "ann_file": str(ann_file), "backend": backend,
                   "outfile_prefix": str(prefix)})
    metric.dataset_meta = {"classes": tuple(c["name"] for c in coco_like.coco_categories())}
    metric.process(samples[: len(samples) // 2])
    metric.process(samples[len(samples) // 2:])
    return metric, metric.evaluate()


def test_coco_metric_from_a_config_table_with_each_backend(generated, tmp_path):
    gt, ann_file, detections = generated
    samples = _samples(gt, detections)
    results = {}
    for backend in ("pycocotools", "faster_coco_eval"):
        metric, values = _metric_values(backend, ann_file, samples, tmp_path / backend)
        assert metric.backend == backend
        assert "person" in metric.table
        results[backend] = values
    reference, fast = results["pycocotools"], results["faster_coco_eval"]
    assert reference.keys() == fast.keys()
    assert len([key for key in reference if key.startswith("coco/bbox_AP_")]) == 80
    for key, value in reference.items():
        assert fast[key] == pytest.approx(value, abs=1e-12), key
    assert 0.05 < reference["coco/bbox_mAP"] < 0.95
    # both evaluated the same detections
    dumped = json.loads((tmp_path / "faster_coco_eval.bbox.json").read_text())
    assert dumped == json.loads((tmp_path / "pycocotools.bbox.json").read_text())
    assert len(dumped) == len(detections)


def test_ground_truth_from_samples_with_each_backend(generated):
    """Without ``ann_file`` the ground truth is built from the samples (crowd as ignore)."""
    gt, _, detections = generated
    categories = coco_like.coco_categories()
    label_of = {c["id"]: label for label, c in enumerate(categories)}
    empty = np.flatnonzero(np.diff(gt.first_box) == 0)
    chosen = sorted({*range(50), *empty.tolist()})
    samples = [_samples(gt, detections)[index] for index in chosen]
    for index, sample in zip(chosen, samples, strict=True):
        own = slice(gt.first_box[index], gt.first_box[index + 1])
        boxes = torch.from_numpy(gt.boxes[own]).float()
        boxes[:, 2:] += boxes[:, :2]
        labels = torch.tensor([label_of[int(c)] for c in gt.category_ids[own]], dtype=torch.long)
        crowd = torch.from_numpy(gt.crowd[own])
        sample.gt = Instances(boxes=boxes[~crowd], labels=labels[~crowd])
        sample.ignore = Instances(boxes=boxes[crowd], labels=labels[crowd])
    assert any(len(s.ignore) for s in samples) and any(not len(s.gt) for s in samples)
    values = {}
    for backend in ("pycocotools", "faster_coco_eval"):
        metric = CocoMetric(backend=backend)
        metric.dataset_meta = {
            "classes": tuple(c["name"] for c in categories),
            "label_to_cat_id": {label: c["id"] for label, c in enumerate(categories)},
        }
        metric.process(samples)
        values[backend] = metric.evaluate()
    assert 0.05 < values["pycocotools"]["coco/bbox_mAP"] < 0.95
    for key, value in values["pycocotools"].items():
        assert values["faster_coco_eval"][key] == pytest.approx(value, abs=1e-12), key


def test_missing_package_is_a_config_error_at_build_time(monkeypatch):
    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)  # import raises ImportError
    expected = r"backend.*faster_coco_eval.*pip install faster-coco-eval"
    with pytest.raises(ConfigError, match=expected):
        get_registries().build("metric", {"type": "CocoMetric", "backend": "faster_coco_eval"})
    CocoMetric()  # the default backend does not need it


def test_unknown_backend_is_refused():
    with pytest.raises(ConfigError, match="backend"):
        get_registries().build("metric", {"type": "CocoMetric", "backend": "cocoapi"})
