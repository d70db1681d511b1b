"""CocoMetric against an independent pycocotools evaluation of the same files."""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from core.data.datasets.coco import CocoDataset
from core.data.datasets.shapes import ShapesDataset
from core.data.transforms.geometric import RandomFlip, Resize
from core.data.transforms.loading import LoadImage
from core.evaluation.coco_metric import STAT_KEYS, CocoMetric
from core.structures import DetSample, Instances

CATEGORIES = [{"id": 4, "name": "apple"}, {"id": 9, "name": "pear"}, {"id": 17, "name": "plum"}]


def random_coco(num_images=12, seed=0):
    """An annotation dict with varied box sizes, non-contiguous category ids and crowd boxes."""
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 640, "height": 480})
        for _ in range(rng.integers(1, 6)):
            w, h = rng.uniform(8, 300, size=2)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(rng.choice([4, 9, 17])),
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": int(rng.random() < 0.1),
                }
            )
    return {"images": images, "annotations": annotations, "categories": CATEGORIES}


def noisy_predictions(sample: DetSample, rng) -> Instances:
    """Jittered copies of the ground truth, some wrong labels, some false positives."""
    boxes = torch.cat([sample.gt.boxes, sample.ignore.boxes])
    labels = torch.cat([sample.gt.labels, sample.ignore.labels])
    jitter = torch.from_numpy(rng.normal(0, 12, size=boxes.shape)).float()
    boxes = boxes + jitter
    labels = torch.where(torch.from_numpy(rng.random(len(labels)) < 0.15), (labels + 1) % 3, labels)
    extra = torch.from_numpy(rng.uniform(0, 400, size=(2, 2))).float()
    boxes = torch.cat([boxes, torch.cat([extra, extra + 60], dim=1)])
    labels = torch.cat([labels, torch.from_numpy(rng.integers(0, 3, size=2))])
    scores = torch.from_numpy(rng.uniform(0.05, 1.0, size=len(boxes))).float()
    return Instances(boxes=boxes, labels=labels, scores=scores)


def independent_stats(gt_path, results_path, img_ids=None):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        evaluator = COCOeval(gt, gt.loadRes(str(results_path)), "bbox")
        if img_ids is not None:
            evaluator.params.imgIds = img_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


@pytest.fixture
def coco_files(tmp_path):
    (tmp_path / "img").mkdir()
    for index in range(1, 13):
        (tmp_path / "img" / f"{index}.jpg").write_bytes(b"")  # never opened by the metric
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(random_coco()))
    return tmp_path, path


def predicted_samples(coco_files, seed):
    """The dataset of ``coco_files`` and all its samples with :func:`noisy_predictions`."""
    root, ann_path = coco_files
    dataset = CocoDataset(ann_file=str(ann_path), img_dir=str(root / "img"))
    rng = np.random.default_rng(seed)
    samples = [dataset.raw_sample(i) for i in range(len(dataset))]
    for sample in samples:
        sample.pred = noisy_predictions(sample, rng)
    return dataset, samples


def test_matches_pycocotools_on_the_dumped_results(coco_files):
    root, ann_path = coco_files
    dataset, samples = predicted_samples(coco_files, seed=1)
    metric = CocoMetric(ann_file=str(ann_path), outfile_prefix=str(root / "out" / "run"))
    metric.dataset_meta = {"classes": dataset.classes}  # category ids found by name
    metric.process(samples[:5])
    metric.process(samples[5:])
    values = metric.evaluate()
    stats = independent_stats(ann_path, root / "out" / "run.bbox.json")
    for key, index in STAT_KEYS.items():
        assert values[f"coco/{key}"] == stats[index], key
    assert 0.2 < values["coco/bbox_mAP"] < 0.9  # a real, imperfect evaluation
    dumped = json.loads((root / "out" / "run.bbox.json").read_text())
    assert {d["category_id"] for d in dumped} == {4, 9, 17}
    assert "apple" in metric.table and "plum" in metric.table
    assert {f"coco/bbox_AP_{name}" for name in dataset.classes} <= set(values)


def test_ground_truth_built_from_samples_matches_pycocotools(coco_files):
    root, ann_path = coco_files
    dataset, samples = predicted_samples(coco_files, seed=2)
    metric = CocoMetric(outfile_prefix=str(root / "samples"))
    metric.dataset_meta = dataset.metainfo
    metric.process(samples)
    values = metric.evaluate()
    stats = independent_stats(root / "samples.gt.json", root / "samples.bbox.json")
    for key, index in STAT_KEYS.items():
        assert values[f"coco/{key}"] == stats[index], key
    # boxes of the ground truth are the same, areas are box areas in both files: the
    # evaluation with the original file agrees
    original = independent_stats(ann_path, root / "samples.bbox.json")
    assert values["coco/bbox_mAP"] == pytest.approx(original[0], abs=1e-9)


def _perfect(samples):
    for sample in samples:
        boxes = sample.gt.boxes
        sx, sy = sample.scale_factor
        if sample.flip:  # undo the flip applied to the ground truth
            w = sample.img_shape[1]
            boxes = torch.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], 1)
        boxes = boxes / torch.tensor([sx, sy, sx, sy])
        sample.pred = Instances(boxes=boxes, labels=sample.gt.labels, scores=torch.ones(len(boxes)))
    return samples


def test_perfect_predictions_score_one_even_after_resize_and_flip(tmp_path):
    dataset = ShapesDataset(
        num_images=10, image_size=128, object_size=(16, 48), data_root=str(tmp_path)
    )
    transforms = [LoadImage(), Resize(scale=(200, 200)), RandomFlip(prob=0.5)]
    samples = []
    for index in range(len(dataset)):
        sample = dataset.raw_sample(index)
        rng = np.random.default_rng(index)
        for transform in transforms:
            sample = transform(sample, rng)
        samples.append(sample)
    assert any(s.flip for s in samples) and samples[0].scale_factor != (1.0, 1.0)
    metric = CocoMetric()
    metric.dataset_meta = dataset.metainfo
    metric.process(_perfect(samples))
    values = metric.evaluate()
    assert values["coco/bbox_mAP"] == pytest.approx(1.0)
    assert values["coco/bbox_mAP_50"] == pytest.approx(1.0)
    assert values["coco/bbox_AR_100"] == pytest.approx(1.0)


def test_no_predictions_gives_zeros_and_reset_forgets():
    metric = CocoMetric()
    metric.dataset_meta = {"classes": ("a",)}
    sample = DetSample(
        img_id=1,
        ori_shape=(10, 10),
        gt=Instances(boxes=torch.tensor([[1.0, 1, 5, 5]]), labels=torch.tensor([0])),
        pred=Instances.empty(with_scores=True),
    )
    metric.process([sample])
    assert metric.evaluate()["coco/bbox_mAP"] == 0.0
    metric.reset()
    assert metric.results == []


def _rank_main(rank, store, samples, queue):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    metric = CocoMetric()
    metric.dataset_meta = {"classes": ("apple", "pear", "plum")}
    metric.process(samples[rank::2] + samples[:1])  # the first image twice, as padding would
    queue.put((rank, metric.evaluate()))
    dist.destroy_process_group()


def test_results_are_gathered_across_ranks(coco_files, tmp_path):
    dataset, samples = predicted_samples(coco_files, seed=3)
    single = CocoMetric()
    single.dataset_meta = {"classes": dataset.classes}
    single.process(samples)
    expected = single.evaluate()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    ranks = [
        context.Process(target=_rank_main, args=(r, tmp_path / "store", samples, queue))
        for r in range(2)
    ]
    for process in ranks:
        process.start()
    results = dict(queue.get(timeout=60) for _ in ranks)
    for process in ranks:
        process.join(30)
    assert results[0] == expected and results[1] == expected
