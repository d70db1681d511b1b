"""RecordIndex: the columnar record storage of datasets."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

from core.data.datasets.coco import CocoDataset, check_box
from core.data.datasets.coco_columns import box_from_xywh
from core.data.datasets.records import AnnotatedBox, ImageRecord, RecordIndex, record_from_boxes
from core.data.datasets.skips import SkipLog
from core.errors import DataError


def random_records(rng: np.random.Generator, count: int) -> list[ImageRecord]:
    """Records with 0..4 boxes and 0..2 ignore regions each, odd paths included."""
    records = []
    for index in range(count):
        num, num_ignore = int(rng.integers(0, 5)), int(rng.integers(0, 3))
        records.append(ImageRecord(
            img_id=int(rng.integers(-5, 10**12)),
            img_path=f"/data/imgs/{index}-{'é' * (index % 3)}.jpg",
            height=int(rng.integers(1, 5000)),
            width=int(rng.integers(1, 5000)),
            boxes=rng.uniform(0, 500, (num, 4)).astype(np.float32),
            labels=rng.integers(0, 80, num),
            ignore_boxes=rng.uniform(0, 500, (num_ignore, 4)).tolist(),
            ignore_labels=rng.integers(0, 80, num_ignore).tolist(),
            exif_transpose=bool(rng.integers(0, 2)),
        ))
    return records


def assert_same_record(got: ImageRecord, expected: ImageRecord) -> None:
    assert (got.img_id, got.img_path, got.height, got.width, got.exif_transpose) == (
        expected.img_id, expected.img_path, expected.height, expected.width,
        expected.exif_transpose)
    assert type(got.img_id) is int and type(got.height) is int and type(got.width) is int
    for name in ("boxes", "labels", "ignore_boxes", "ignore_labels"):
        value, reference = getattr(got, name), getattr(expected, name)
        assert value.dtype == reference.dtype and value.shape == reference.shape, name
        assert np.array_equal(value, reference), name


def test_index_gives_back_every_record_with_its_values_dtypes_and_order():
    records = random_records(np.random.default_rng(3), 60)
    assert any(len(r.boxes) == 0 for r in records) and any(len(r.ignore_boxes) for r in records)
    index = RecordIndex.from_records(records)
    assert len(index) == 60
    for got, expected in zip(index, records, strict=True):
        assert_same_record(got, expected)
    assert_same_record(index[-1], records[-1])
    with pytest.raises(IndexError):
        index[60]
    with pytest.raises(IndexError):
        index[-61]
    assert index.num_boxes == sum(len(r.boxes) for r in records)


def test_index_is_numpy_arrays_only_with_the_documented_dtypes():
    index = RecordIndex.from_records(random_records(np.random.default_rng(4), 20))
    arrays = index.arrays()
    assert {name: array.dtype for name, array in arrays.items()} == {
        name: np.dtype(dtype) for name, dtype in RecordIndex.FIELDS}
    assert index.boxes.shape[1] == 4 and index.ignore_boxes.shape[1] == 4
    assert index.nbytes == sum(array.nbytes for array in arrays.values())
    assert not any(array.dtype == object for array in arrays.values())
    again = RecordIndex(**arrays)
    for got, expected in zip(again, index, strict=True):
        assert_same_record(got, expected)


def test_records_are_fresh_copies():
    index = RecordIndex.from_records(random_records(np.random.default_rng(5), 10))
    which = next(i for i in range(10) if len(index[i].boxes))
    before = index[which].boxes.copy()
    record = index[which]
    record.boxes += 100
    record.gt.boxes.mul_(3)
    assert np.array_equal(index[which].boxes, before)
    assert index[which].gt.boxes.dtype == torch.float32


def test_from_columns_groups_rows_by_image_keeping_their_order():
    index = RecordIndex.from_columns(
        img_ids=np.array([10, 20, 30]), heights=np.array([5, 6, 7]), widths=np.array([8, 9, 10]),
        paths=["a.jpg", "b.jpg", "c.jpg"], exif_transpose=np.zeros(3, dtype=bool),
        box_image=np.array([2, 0, 2, 0]), boxes=np.arange(16.0).reshape(4, 4),
        labels=np.array([1, 2, 3, 4]), ignore_image=np.array([1]),
        ignore_boxes=np.ones((1, 4)), ignore_labels=np.array([9]),
    )
    assert index[0].labels.tolist() == [2, 4] and index[2].labels.tolist() == [1, 3]
    assert index[0].boxes[:, 0].tolist() == [4.0, 12.0]
    assert len(index[1].boxes) == 0 and index[1].ignore_labels.tolist() == [9]
    assert index[2].img_path == "c.jpg" and index[2].img_id == 30


def test_empty_index_and_inconsistent_arrays():
    empty = RecordIndex.from_records([])
    assert len(empty) == 0 and list(empty) == [] and empty.boxes.shape == (0, 4)
    arrays = RecordIndex.from_records(random_records(np.random.default_rng(6), 5)).arrays()
    arrays["labels"] = arrays["labels"][:-1]
    with pytest.raises(ValueError, match="rows"):
        RecordIndex(**arrays)


# --- the COCO parse, against a per-annotation reference ------------------------------------

def reference_coco(content: dict, ann_file: str, img_dir: Path, classes=None,
                   filter_empty_gt=False, min_size=0, strict=False):
    """Records, skip counts and repairs of ``content`` read one annotation at a time (images
    trusted, as with ``check_images = False``)."""
    skips = SkipLog(f"CocoDataset({ann_file})", strict=strict)
    repaired: dict[str, int] = {}
    categories = sorted((c for c in content["categories"] if isinstance(c, dict) and "id" in c),
                        key=lambda c: c["id"])
    names_by_id = {int(c["id"]): str(c.get("name", c["id"])) for c in categories}
    if classes is None:
        selected = list(names_by_id)
    else:
        ids_by_name = {name: cat_id for cat_id, name in names_by_id.items()}
        selected = [ids_by_name[name] for name in classes]
    cat_to_label = {cat_id: label for label, cat_id in enumerate(selected)}
    image_by_id = {}
    for image in content["images"]:
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            skips.skip("bad_image_entry",
                       f"{ann_file}: image entry {image!r} lacks 'id' or 'file_name'")
            continue
        image_by_id[int(image["id"])] = image
    anns_by_image = defaultdict(list)
    for ann in content["annotations"]:
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        if image_id not in image_by_id:
            ann_id = ann.get("id") if isinstance(ann, dict) else ann
            skips.skip("unknown_image_id",
                       f"{ann_file}: annotation {ann_id!r} refers to unknown image id {image_id!r}")
            continue
        anns_by_image[int(image_id)].append(ann)
    records = []
    for image_id, image in image_by_id.items():
        sample = f"{ann_file}: image {image['file_name']!r} (id {image['id']})"
        try:
            width, height = int(image["width"]), int(image["height"])
        except (KeyError, TypeError, ValueError):
            width = height = 0
        if width <= 0 or height <= 0:
            skips.skip("bad_image_size", f"{sample}: missing or invalid width/height")
            continue
        if min(width, height) < min_size:
            skips.omit("small_image", f"{sample}: {width}x{height} is below min_size {min_size}")
            continue
        objects = []
        for ann in anns_by_image.get(image_id, []):
            where = f"{sample}, annotation {ann.get('id')}"
            cat_id = ann.get("category_id")
            if cat_id not in names_by_id:
                skips.skip("unknown_category", f"{where}: unknown category id {cat_id}")
                continue
            if cat_id not in cat_to_label:
                continue
            box = box_from_xywh(ann.get("bbox"))
            if box is None:
                skips.skip("malformed_box",
                           f"{where}: bbox {ann.get('bbox')!r} is not [x, y, w, h]")
                continue
            box = check_box(box, width, height, where, skips, repaired, key=sample)
            if box is not None:
                objects.append(AnnotatedBox(box, cat_to_label[cat_id], bool(ann.get("iscrowd", 0))))
        record = record_from_boxes(int(image["id"]), str(img_dir / str(image["file_name"])),
                                   height, width, objects)
        if filter_empty_gt and not len(record.boxes):
            skips.omit("empty_gt", f"{sample}: no boxes (filter_empty_gt = true)")
            continue
        records.append(record)
    skips.summarize()
    return records, skips.as_dict(), repaired


def messy_coco(rng: np.random.Generator, num_images: int = 60, num_anns: int = 700) -> dict:
    """A COCO dict with every kind of bad row mixed in at random places."""
    images = [{"id": i, "file_name": f"{i}.jpg" if i % 7 else f"sub/{i}.jpg",
               "width": int(rng.integers(20, 90)), "height": int(rng.integers(20, 90))}
              for i in range(1, num_images + 1)]
    images[3]["width"] = 0
    images[5].pop("height")
    images[8]["width"] = "x"
    images[9]["height"] = 12.7  # read as 12
    images += [{"id": 70}, "not a dict", {"id": 2, "file_name": "dup.jpg", "width": 40,
                                          "height": 30}]
    bad_boxes = [[1, 2, 3], [1, "x", 5, 5], None, "1,2,3,4", [1, 2, float("nan"), 4],
                 [1, 2, float("inf"), 4], [True, 2, 3, 4], {"x": 1}]
    anns = []
    for k in range(num_anns):
        image_id = int(rng.integers(1, num_images + 1))
        x, y = rng.uniform(-15, 95, 2).round(2)
        w, h = rng.uniform(-3, 50, 2).round(2)
        ann = {"id": k, "image_id": image_id, "category_id": int(rng.choice([1, 2, 5, 9])),
               "bbox": [float(x), float(y), float(w), float(h)],
               "iscrowd": int(rng.random() < 0.1)}
        roll = rng.random()
        if roll < 0.05:
            ann["bbox"] = bad_boxes[int(rng.integers(len(bad_boxes)))]
        elif roll < 0.08:
            ann["category_id"] = 99
        elif roll < 0.11:
            ann["image_id"] = 1000 + k
        elif roll < 0.12:
            ann.pop("image_id")
        elif roll < 0.13:
            ann["bbox"][2] = 0.0
        anns.append(ann)
    anns.append("not a dict")
    categories = [{"id": 9, "name": "nine"}, {"id": 1, "name": "one"}, {"id": 2, "name": "two"},
                  {"id": 5, "name": "five"}, {"name": "no id"}]
    return {"images": images, "annotations": anns, "categories": categories}


@pytest.mark.parametrize(("classes", "filter_empty_gt", "min_size"),
                         [(None, False, 0), (["two", "nine"], True, 0), (None, True, 30)])
def test_coco_parse_equals_the_per_annotation_reference(tmp_path, caplog, classes,
                                                         filter_empty_gt, min_size):
    content = messy_coco(np.random.default_rng(len(str(classes)) + min_size))
    ann_file = tmp_path / "ann.json"
    ann_file.write_text(json.dumps(content))
    options = {"classes": classes, "filter_empty_gt": filter_empty_gt, "min_size": min_size}
    with caplog.at_level(logging.DEBUG, logger="plugdet.data"):
        expected, skipped, repaired = reference_coco(json.loads(ann_file.read_text()),
                                                     str(ann_file), tmp_path / "img", **options)
        reference_log = [(r.levelno, r.getMessage()) for r in caplog.records]
        caplog.clear()
        dataset = CocoDataset(ann_file=str(ann_file), img_dir=str(tmp_path / "img"),
                              check_images=False, cache_index=False, **options)
    log = [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno != logging.INFO]
    assert {"malformed_box", "degenerate_box", "outside_box", "unknown_category",
            "unknown_image_id", "bad_image_entry", "bad_image_size"} <= set(skipped)
    assert repaired["clipped_box"] > 5
    assert dataset.skipped == skipped and dataset.repaired == repaired
    assert log == reference_log
    assert isinstance(dataset.records, RecordIndex) and len(dataset.records) == len(expected)
    for got, record in zip(dataset.records, expected, strict=True):
        assert_same_record(got, record)


def test_coco_strict_raises_on_the_first_problem_in_file_order(tmp_path):
    content = messy_coco(np.random.default_rng(1))
    content["images"] = content["images"][:3]  # good entries: the first problem is a box
    content["annotations"] = [a for a in content["annotations"]
                              if isinstance(a, dict) and a.get("image_id") in (1, 2, 3)]
    ann_file = tmp_path / "ann.json"
    ann_file.write_text(json.dumps(content))
    with pytest.raises(DataError) as expected:
        reference_coco(content, str(ann_file), tmp_path / "img", strict=True)
    with pytest.raises(DataError) as got:
        CocoDataset(ann_file=str(ann_file), img_dir=str(tmp_path / "img"), strict=True,
                    check_images=False, cache_index=False)
    assert str(got.value) == str(expected.value)
