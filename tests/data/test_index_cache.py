"""The on-disk cache of parsed dataset indexes (COCO, VOC, YOLO)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from core.data.datasets.coco import CocoDataset
from core.data.datasets.index_cache import CACHE_ENV
from core.data.datasets.voc import VocDataset
from core.data.datasets.yolo import YoloDataset

HIT = "(cached index "


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "index_cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


def write_image(path: Path, size=(50, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 30, 200)).save(path)


def coco_files(root: Path) -> Path:
    """Three images, boxes of two classes, a crowd box, a clipped and a degenerate box."""
    for index in (1, 2, 3):
        write_image(root / "img" / f"{index}.jpg")
    content = {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 50, "height": 40}
                   for i in (1, 2, 3)],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 2, 10, 10]},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [30, 20, 30, 30]},
            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [5, 5, 9, 9], "iscrowd": 1},
            {"id": 4, "image_id": 2, "category_id": 3, "bbox": [5, 5, 0, 9]},
        ],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
    }
    path = root / "ann.json"
    path.write_text(json.dumps(content))
    return path


def build(caplog, factory, **options):
    """The dataset and whether it came from the cache."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="plugdet.data"):
        dataset = factory(**options)
    return dataset, HIT in caplog.text


def assert_same_dataset(a, b) -> None:
    assert a.classes == b.classes and a.label_to_cat_id == b.label_to_cat_id
    assert a.skipped == b.skipped and a.repaired == b.repaired
    for (name, array), other in zip(a.records.arrays().items(), b.records.arrays().values(),
                                    strict=True):
        assert array.dtype == other.dtype and np.array_equal(array, other), name


def coco(tmp_path, **options):
    defaults = {"ann_file": str(tmp_path / "ann.json"), "img_dir": str(tmp_path / "img")}
    return lambda **more: CocoDataset(**{**defaults, **options, **more})


def test_coco_second_build_hits_with_identical_results(tmp_path, caplog, cache_dir):
    coco_files(tmp_path)
    first, hit = build(caplog, coco(tmp_path))
    assert not hit and first.skipped == {"degenerate_box": 1}
    assert first.repaired == {"clipped_box": 1}
    assert len(list(cache_dir.glob("CocoDataset-*.npz"))) == 1
    second, hit = build(caplog, coco(tmp_path))
    assert hit and "CocoDataset: 3 images, 2 boxes from" in caplog.text
    assert "skipped degenerate_box: 1" in caplog.text
    assert_same_dataset(first, second)
    fresh, hit = build(caplog, coco(tmp_path), cache_index=False)
    assert not hit
    assert_same_dataset(first, fresh)
    assert second[0].gt.boxes.tolist() == [[1.0, 2.0, 11.0, 12.0], [30.0, 20.0, 50.0, 40.0]]


def test_changed_annotation_file_or_option_misses(tmp_path, caplog):
    path = coco_files(tmp_path)
    build(caplog, coco(tmp_path))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    _, hit = build(caplog, coco(tmp_path))
    assert not hit
    assert build(caplog, coco(tmp_path))[1]
    content = json.loads(path.read_text())
    content["annotations"].pop()
    path.write_text(json.dumps(content))
    changed, hit = build(caplog, coco(tmp_path))
    assert not hit and changed.skipped == {}
    filtered, hit = build(caplog, coco(tmp_path), filter_empty_gt=True)
    assert not hit and len(filtered) == 1
    assert not build(caplog, coco(tmp_path), min_size=5)[1]
    assert not build(caplog, coco(tmp_path), classes=["cat"])[1]
    assert build(caplog, coco(tmp_path), filter_empty_gt=True)[1]


def test_deleted_image_misses_only_when_images_are_checked(tmp_path, caplog):
    coco_files(tmp_path)
    build(caplog, coco(tmp_path))
    build(caplog, coco(tmp_path), check_images=False)
    (tmp_path / "img" / "3.jpg").unlink()
    trusted, hit = build(caplog, coco(tmp_path), check_images=False)
    assert hit and len(trusted) == 3
    checked, hit = build(caplog, coco(tmp_path))
    assert not hit and len(checked) == 2 and checked.skipped["missing_image"] == 1
    assert build(caplog, coco(tmp_path))[1]
    write_image(tmp_path / "img" / "3.jpg")
    back, hit = build(caplog, coco(tmp_path))
    assert not hit and len(back) == 3


def test_unchecked_images_need_not_exist(tmp_path, caplog):
    coco_files(tmp_path)
    dataset, _ = build(caplog, coco(tmp_path), img_dir=str(tmp_path / "nowhere"),
                       check_images=False)
    assert len(dataset) == 3 and dataset.records[2].img_path == str(tmp_path / "nowhere/3.jpg")


def test_corrupt_cache_file_is_ignored_and_rewritten(tmp_path, caplog, cache_dir):
    coco_files(tmp_path)
    first, _ = build(caplog, coco(tmp_path))
    (cached,) = cache_dir.glob("*.npz")
    cached.write_bytes(b"garbage")
    again, hit = build(caplog, coco(tmp_path))
    assert not hit and "unreadable index cache" in caplog.text
    assert_same_dataset(first, again)
    assert build(caplog, coco(tmp_path))[1]


def test_unwritable_cache_folder_only_warns(tmp_path, caplog, monkeypatch):
    coco_files(tmp_path)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))
    dataset, _ = build(caplog, coco(tmp_path))
    assert len(dataset) == 3 and "cannot write the index cache" in caplog.text
    assert not build(caplog, coco(tmp_path))[1]


def test_cache_off_writes_nothing(tmp_path, caplog, cache_dir):
    coco_files(tmp_path)
    build(caplog, coco(tmp_path), cache_index=False)
    assert not cache_dir.exists() or not any(cache_dir.iterdir())


def voc_files(root: Path) -> None:
    objects = {"a": [("cat", (1, 2, 20, 30), 0), ("dog", (5, 5, 70, 30), 1)],
               "b": [("bird", (1, 1, 5, 5), 0), ("dog", (3, 3, 9, 9), 0)]}
    for name, objs in objects.items():
        write_image(root / "JPEGImages" / f"{name}.jpg", (60, 40))
        parts = "".join(
            f"<object><name>{cls}</name><difficult>{hard}</difficult><bndbox><xmin>{x1}</xmin>"
            f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
            for cls, (x1, y1, x2, y2), hard in objs)
        xml = (f"<annotation><filename>{name}.jpg</filename><size><width>60</width>"
               f"<height>40</height></size>{parts}</annotation>")
        (root / "Annotations").mkdir(exist_ok=True)
        (root / "Annotations" / f"{name}.xml").write_text(xml)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("a\nb\n")


def test_voc_cache_hits_identically_and_misses_on_changed_files(tmp_path, caplog):
    voc_files(tmp_path)

    def voc(**more):
        return VocDataset(data_root=str(tmp_path), classes=["cat", "dog"], **more)

    first, hit = build(caplog, voc)
    assert not hit and first.skipped == {"unknown_class": 1} and first.repaired
    second, hit = build(caplog, voc)
    assert hit
    assert_same_dataset(first, second)
    assert_same_dataset(first, voc(cache_index=False))
    xml = tmp_path / "Annotations" / "b.xml"
    xml.write_text(xml.read_text().replace("bird", "cat"))
    changed, hit = build(caplog, voc)
    assert not hit and changed.skipped == {}
    split = tmp_path / "ImageSets" / "Main" / "trainval.txt"
    split.write_text("a\n")
    assert not build(caplog, voc)[1]
    (tmp_path / "JPEGImages" / "a.jpg").unlink()
    trusted, hit = build(caplog, voc, check_images=False)
    assert not hit and len(trusted) == 1
    assert build(caplog, voc, check_images=False)[1]


def test_yolo_cache_hits_identically_and_misses_on_changed_labels(tmp_path, caplog):
    for name, size in {"a.jpg": (40, 20), "b.png": (10, 10)}.items():
        write_image(tmp_path / "images" / "train" / name, size)
    labels = tmp_path / "labels" / "train"
    labels.mkdir(parents=True)
    (labels / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n1 0.9 0.9 0.5 0.5\n7 0.5 0.5 0.1 0.1\n")
    data = tmp_path / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(tmp_path), "train": "images/train",
                                    "names": ["cat", "dog"]}))

    def yolo(**more):
        return YoloDataset(str(data), split="train", **more)

    first, hit = build(caplog, yolo)
    assert not hit and first.skipped == {"unknown_class": 1}
    assert first.repaired == {"clipped_box": 1}
    second, hit = build(caplog, yolo)
    assert hit
    assert_same_dataset(first, second)
    assert_same_dataset(first, yolo(cache_index=False))
    (labels / "b.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    added, hit = build(caplog, yolo)
    assert not hit and added.records[1].labels.tolist() == [1]
    write_image(tmp_path / "images" / "train" / "b.png", (20, 10))
    resized, hit = build(caplog, yolo)
    assert not hit and resized.records[1].width == 20
