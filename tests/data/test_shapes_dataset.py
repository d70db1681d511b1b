"""The generated shapes set: deterministic, cached, safe under concurrent generation."""

from __future__ import annotations

import json
import multiprocessing

import torch

from core.data.datasets.shapes import ShapesDataset
from core.data.datasets.shapes_gen import SHAPE_CLASSES, ensure_generated
from core.data.transforms.loading import LoadImage

PARAMS = {"num_images": 24, "image_size": 128, "object_size": (16, 48), "max_objects": 4}


def annotations(dataset):
    return json.loads(dataset.ann_file.read_text())


def test_same_parameters_give_identical_data(tmp_path):
    first = ShapesDataset(data_root=str(tmp_path / "a"), **PARAMS)
    second = ShapesDataset(data_root=str(tmp_path / "b"), **PARAMS)
    assert annotations(first) == annotations(second)
    for name in ("000000.jpg", "000023.jpg"):
        assert (first.folder / "images" / name).read_bytes() == (
            second.folder / "images" / name
        ).read_bytes()


def test_splits_and_seeds_differ(tmp_path):
    train = ShapesDataset(data_root=str(tmp_path), split="train", **PARAMS)
    val = ShapesDataset(data_root=str(tmp_path), split="val", **PARAMS)
    other_seed = ShapesDataset(data_root=str(tmp_path), seed=1, **PARAMS)
    assert len({train.folder, val.folder, other_seed.folder}) == 3
    boxes = [annotations(d)["annotations"][0]["bbox"] for d in (train, val, other_seed)]
    assert boxes[0] != boxes[1] and boxes[0] != boxes[2]


def test_content_is_a_detection_set(tmp_path):
    dataset = ShapesDataset(data_root=str(tmp_path), pipeline=[LoadImage()], **PARAMS)
    assert dataset.classes == SHAPE_CLASSES and len(dataset) == 24
    labels = torch.cat([r.gt.labels for r in dataset.records])
    assert set(labels.tolist()) == set(range(len(SHAPE_CLASSES)))
    boxes = torch.cat([r.gt.boxes for r in dataset.records])
    sides = boxes[:, 2:] - boxes[:, :2]
    assert boxes.min() >= 0 and boxes.max() <= 128
    assert sides.min() >= 8 and sides.max() <= 48 * 1.5
    assert all(1 <= len(r.gt) <= 4 for r in dataset.records)
    sample = dataset[0]
    assert sample.image.shape == (3, 128, 128)
    x1, y1, x2, y2 = sample.gt.boxes[0].round().int().tolist()
    inside = sample.image[:, y1:y2, x1:x2].float().std(dim=(1, 2)).sum()
    assert inside > 10  # an object, not flat background


def test_second_construction_reuses_the_cache(tmp_path):
    first = ShapesDataset(data_root=str(tmp_path), **PARAMS)
    stamp = first.ann_file.stat().st_mtime_ns
    second = ShapesDataset(data_root=str(tmp_path), **PARAMS)
    assert second.folder == first.folder
    assert second.ann_file.stat().st_mtime_ns == stamp


def _generate(folder):
    ensure_generated(
        folder, num_images=30, image_size=96, seed=3, split="train", object_size=(16, 40)
    )


def test_concurrent_generation_leaves_one_complete_copy(tmp_path):
    folder = tmp_path / "shapes" / "race"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_generate, args=(folder,)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["race"]  # no temporary folders
    content = json.loads((folder / "annotations.json").read_text())
    assert len(content["images"]) == 30
    assert len(list((folder / "images").iterdir())) == 30
