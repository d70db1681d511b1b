"""CocoDataset: label mapping, crowd regions, filters and bad input."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from core.data.datasets.coco import CocoDataset
from core.data.transforms.loading import LoadImage
from core.errors import DataError

CATEGORIES = [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}, {"id": 12, "name": "bird"}]


def write_image(path, size=(50, 40)):
    Image.fromarray(np.full((size[1], size[0], 3), 90, dtype=np.uint8)).save(path)


def ann(ann_id, image_id, cat, bbox, iscrowd=0):
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": cat,
        "bbox": bbox,
        "iscrowd": iscrowd,
    }


@pytest.fixture
def coco_dir(tmp_path):
    """Three images: 1 with boxes of all classes and a crowd box, 2 with one cat, 3 empty."""
    (tmp_path / "img").mkdir()
    for index in (1, 2, 3):
        write_image(tmp_path / "img" / f"{index}.jpg")
    content = {
        "images": [
            {"id": i, "file_name": f"{i}.jpg", "width": 50, "height": 40} for i in (1, 2, 3)
        ],
        "annotations": [
            ann(1, 1, 7, [1, 2, 10, 10]),
            ann(2, 1, 3, [20, 5, 10, 20]),
            ann(3, 1, 12, [5, 25, 8, 8]),
            ann(4, 1, 3, [30, 20, 15, 15], iscrowd=1),
            ann(5, 2, 3, [0, 0, 50, 40]),
        ],
        "categories": CATEGORIES,
    }
    return tmp_path, content


def write(tmp_path, content, name="ann.json"):
    path = tmp_path / name
    path.write_text(json.dumps(content))
    return str(path)


def test_category_ids_map_to_contiguous_labels_and_back(coco_dir):
    root, content = coco_dir
    dataset = CocoDataset(ann_file=write(root, content), img_dir=str(root / "img"))
    assert dataset.classes == ("cat", "dog", "bird")  # category-id order: 3, 7, 12
    assert dataset.label_to_cat_id == {0: 3, 1: 7, 2: 12}
    assert len(dataset) == 3 and dataset.skipped == {}
    first = dataset.raw_sample(0)
    assert first.img_id == 1
    assert first.gt.labels.tolist() == [1, 0, 2]
    assert first.gt.boxes[1].tolist() == [20.0, 5.0, 30.0, 25.0]  # xywh -> xyxy
    assert first.ignore.boxes.tolist() == [[30.0, 20.0, 45.0, 35.0]]  # iscrowd kept as ignore
    assert first.ignore.labels.tolist() == [0]
    assert dataset.metainfo["label_to_cat_id"] == {0: 3, 1: 7, 2: 12}


def test_classes_subset_keeps_given_order(coco_dir):
    root, content = coco_dir
    dataset = CocoDataset(
        ann_file=write(root, content), img_dir=str(root / "img"), classes=["bird", "dog"]
    )
    assert dataset.classes == ("bird", "dog")
    assert dataset.label_to_cat_id == {0: 12, 1: 7}
    assert dataset.raw_sample(0).gt.labels.tolist() == [1, 0]
    assert len(dataset.raw_sample(1).gt) == 0  # the cat image has no selected box


def test_filters_leave_out_and_count(coco_dir):
    root, content = coco_dir
    content["images"][2]["width"] = 10
    write_image(root / "img" / "3.jpg", size=(10, 40))
    dataset = CocoDataset(
        ann_file=write(root, content), img_dir=str(root / "img"), filter_empty_gt=True
    )
    assert [dataset.raw_sample(i).img_id for i in range(len(dataset))] == [1, 2]
    assert dataset.skipped == {"empty_gt": 1}
    small = CocoDataset(ann_file=write(root, content), img_dir=str(root / "img"), min_size=20)
    assert len(small) == 2 and small.skipped == {"small_image": 1}


def test_data_root_prefixes_relative_paths(coco_dir, monkeypatch):
    root, content = coco_dir
    write(root, content)
    monkeypatch.chdir(root.parent)
    dataset = CocoDataset(
        ann_file="ann.json", img_dir="img", data_root=root.name, pipeline=[LoadImage()]
    )
    assert dataset[0].image.shape == (3, 40, 50)


def test_bad_boxes_are_clipped_or_dropped_and_counted(coco_dir, caplog):
    root, content = coco_dir
    content["annotations"] += [
        ann(10, 2, 7, [40, 30, 20, 20]),  # partly outside: clipped
        ann(11, 2, 7, [10, 10, 0, 5]),  # zero width
        ann(12, 2, 7, [10, 10, -4, 5]),  # xmax < xmin
        ann(13, 2, 7, [60, 50, 5, 5]),  # outside the image
        ann(14, 2, 99, [1, 1, 5, 5]),  # unknown category
        ann(15, 42, 7, [1, 1, 5, 5]),  # unknown image
        ann(16, 2, 7, [1, "x", 5, 5]),  # malformed
    ]
    with caplog.at_level(logging.WARNING, logger="plugdet.data"):
        dataset = CocoDataset(ann_file=write(root, content), img_dir=str(root / "img"))
    assert dataset.skipped == {
        "degenerate_box": 2,
        "outside_box": 1,
        "unknown_category": 1,
        "unknown_image_id": 1,
        "malformed_box": 1,
    }
    assert dataset.repaired == {"clipped_box": 1}
    sample = dataset.raw_sample(1)
    assert sample.gt.boxes.tolist() == [[0.0, 0.0, 50.0, 40.0], [40.0, 30.0, 50.0, 40.0]]
    assert "annotation 14: unknown category id 99" in caplog.text
    assert "'2.jpg' (id 2), annotation 11" in caplog.text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (ann(11, 2, 7, [10, 10, 0, 5]), "xmax <= xmin"),
        (ann(14, 2, 99, [1, 1, 5, 5]), "unknown category id 99"),
    ],
)
def test_strict_turns_skips_into_errors(coco_dir, extra, message):
    root, content = coco_dir
    content["annotations"].append(extra)
    path = write(root, content)
    with pytest.raises(DataError, match=message) as info:
        CocoDataset(ann_file=path, img_dir=str(root / "img"), strict=True)
    assert path in str(info.value)


def test_missing_and_corrupt_images(coco_dir, caplog):
    root, content = coco_dir
    (root / "img" / "3.jpg").unlink()
    (root / "img" / "2.jpg").write_bytes(b"not a jpeg")
    path = write(root, content)
    dataset = CocoDataset(ann_file=path, img_dir=str(root / "img"), pipeline=[LoadImage()])
    assert len(dataset) == 2 and dataset.skipped == {"missing_image": 1}
    with caplog.at_level(logging.WARNING, logger="plugdet.data"):
        replacement = dataset[1]  # image 2 is corrupt: the next sample comes instead
    assert replacement.img_id == 1 and replacement.image is not None
    assert dataset.skipped == {"missing_image": 1, "bad_image": 1}
    assert "2.jpg" in caplog.text and "not a decodable image" in caplog.text
    write_image(root / "img" / "3.jpg")
    strict = CocoDataset(
        ann_file=path, img_dir=str(root / "img"), pipeline=[LoadImage()], strict=True
    )
    with pytest.raises(DataError, match=r"2\.jpg"):
        strict[1]


def test_every_image_corrupt_gives_up_with_the_last_error(coco_dir):
    root, content = coco_dir
    for index in (1, 2, 3):
        (root / "img" / f"{index}.jpg").write_bytes(b"broken")
    dataset = CocoDataset(
        ann_file=write(root, content), img_dir=str(root / "img"), pipeline=[LoadImage()]
    )
    with pytest.raises(DataError, match=r"consecutive samples failed.*not a decodable"):
        dataset[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "annotation file is empty"),
        ("{not json", "invalid JSON"),
        ("[]", "expected a JSON object"),
        (json.dumps({"images": [], "annotations": [], "categories": CATEGORIES}), "no 'images'"),
        (
            json.dumps(
                {
                    "images": [{"id": 1, "file_name": "1.jpg", "width": 5, "height": 5}],
                    "categories": [],
                }
            ),
            "no 'categories'",
        ),
    ],
)
def test_unusable_annotation_files_raise_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as info:
        CocoDataset(ann_file=str(path))
    assert str(path) in str(info.value)


def test_missing_annotation_file_and_unknown_class(coco_dir):
    root, content = coco_dir
    with pytest.raises(DataError, match="annotation file not found"):
        CocoDataset(ann_file=str(root / "nope.json"))
    with pytest.raises(DataError, match=r"classes \['horse'\] are not categories"):
        CocoDataset(ann_file=write(root, content), img_dir=str(root / "img"), classes=["horse"])


def test_nothing_usable_is_an_error(coco_dir):
    root, content = coco_dir
    for index in (1, 2, 3):
        (root / "img" / f"{index}.jpg").unlink()
    with pytest.raises(DataError, match=r"no usable images.*missing_image"):
        CocoDataset(ann_file=write(root, content), img_dir=str(root / "img"))


def test_samples_do_not_share_mutable_ground_truth(coco_dir):
    root, content = coco_dir
    from core.data.transforms.geometric import RandomFlip

    dataset = CocoDataset(
        ann_file=write(root, content),
        img_dir=str(root / "img"),
        pipeline=[LoadImage(), RandomFlip(prob=1.0)],
    )
    before = dataset.records[0].gt.boxes.clone()
    flipped = dataset[0]
    assert not torch.equal(flipped.gt.boxes, before)
    assert torch.equal(dataset.records[0].gt.boxes, before)
