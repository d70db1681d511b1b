"""Instance masks read from COCO and YOLO files, kept in the record index and its cache."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from pycocotools import mask as mask_utils

from core.data.datasets.coco import CocoDataset
from core.data.datasets.coco_masks import bitmap_polygons, read_segmentation
from core.data.datasets.index_cache import CACHE_ENV, CachedIndex, IndexCache
from core.data.datasets.records import ImageRecord, RecordIndex
from core.data.datasets.yolo import YoloDataset
from core.errors import DataError
from core.masks import PolygonMasks

WIDTH, HEIGHT = 40, 30


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "index_cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


def blob() -> np.ndarray:
    """A ``(HEIGHT, WIDTH)`` uint8 bitmap: a 10x6 rectangle with a 2x2 notch cut out."""
    bitmap = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    bitmap[4:10, 20:30] = 1
    bitmap[4:6, 20:22] = 0
    return bitmap


def compressed_rle(bitmap: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(bitmap))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def uncompressed_rle(bitmap: np.ndarray) -> dict:
    flat = bitmap.reshape(-1, order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": [HEIGHT, WIDTH], "counts": counts}


def ann(ann_id: int, image_id: int, bbox: list[float], segmentation, iscrowd: int = 0) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": bbox,
            "segmentation": segmentation, "iscrowd": iscrowd}


TRIANGLE = [[2.0, 2.0, 12.0, 2.0, 2.0, 14.0]]


def coco_set(root: Path, annotations: list[dict]) -> Path:
    for index in (1, 2):
        path = root / "img" / f"{index}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (WIDTH, HEIGHT), (90, 30, 200)).save(path)
    content = {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": WIDTH, "height": HEIGHT}
                   for i in (1, 2)],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "thing"}],
    }
    path = root / "ann.json"
    path.write_text(json.dumps(content))
    return path


def good_annotations() -> list[dict]:
    return [
        ann(1, 1, [2, 2, 10, 12], TRIANGLE),
        ann(2, 1, [20, 4, 10, 6], compressed_rle(blob())),
        ann(3, 2, [20, 4, 10, 6], uncompressed_rle(blob())),
        ann(4, 2, [0, 20, 10, 10], uncompressed_rle(np.pad(np.ones((10, 10), np.uint8),
                                                          ((20, 0), (0, 30)))), iscrowd=1),
        ann(5, 2, [1, 1, 4, 4], [[1, 1, 5, 1, 5, 5, 1, 5], [6, 6, 8, 6, 8, 8]]),
    ]


def coco(path: Path, **options) -> CocoDataset:
    return CocoDataset(str(path), img_dir=str(path.parent / "img"), with_mask=True, **options)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_coco_polygons_rle_and_crowd_regions_become_polygon_masks(tmp_path):
    dataset = coco(coco_set(tmp_path, good_annotations()))
    assert dataset.skipped == {} and dataset.records.with_mask
    first, second = dataset.records
    gt = first.gt
    assert isinstance(gt.masks, PolygonMasks) and gt.masks.shape == (HEIGHT, WIDTH)
    np.testing.assert_allclose(gt.masks.polygons[0][0], np.reshape(TRIANGLE, (-1, 2)))
    # the RLE traced to a polygon: the notched outline, pixel edges with cut corners
    traced = gt.masks.polygons[1]
    assert len(traced) == 1 and traced[0].dtype == np.float32
    assert iou(gt.masks[1].to_tensor()[0].numpy(), blob().astype(bool)) > 0.9
    # five convex corners lose 1/8 pixel each, the concave one gains 1/8
    assert gt.masks.areas()[1].item() == pytest.approx(blob().sum() - 5 / 8 + 1 / 8)
    np.testing.assert_allclose(gt.masks.bounding_boxes()[1], [20, 4, 30, 10])
    # compressed and uncompressed RLE give the same polygons
    assert len(second.gt) == 2 and len(second.ignore) == 1
    np.testing.assert_array_equal(second.gt.masks.polygons[0][0], traced[0])
    assert [len(parts) for parts in second.gt.masks.polygons] == [1, 2]
    # the crowd region is an ignore region with its mask
    crowd = second.ignore.masks
    assert isinstance(crowd, PolygonMasks) and len(crowd) == 1
    np.testing.assert_allclose(crowd.bounding_boxes()[0], [0, 20, 10, 30])
    sample = dataset[1]
    assert isinstance(sample.gt.masks, PolygonMasks) and len(sample.gt.masks) == 2


@pytest.mark.parametrize(("segmentation", "problem"), [
    ([[1, 1, 5, 1]], "has fewer than 3 points"),
    ([], "empty segmentation"),
    (None, "no segmentation"),
    ({"size": [HEIGHT + 1, WIDTH], "counts": "abc"}, f"differs from the {HEIGHT}x{WIDTH} image"),
    ({"size": [HEIGHT, WIDTH], "counts": [5, 7]}, "counts do not cover"),
    ([[1, 1, 5, 1, 5, float("nan")]], "not finite x, y pairs"),
])
def test_coco_bad_masks_are_named_with_file_and_annotation_and_skipped(
        tmp_path, caplog, segmentation, problem):
    annotations = [*good_annotations(), ann(9, 2, [3, 3, 5, 5], segmentation)]
    path = coco_set(tmp_path, annotations)
    with caplog.at_level(logging.WARNING, logger="plugdet.data"):
        dataset = coco(path)
    assert dataset.skipped == {"bad_mask": 1}
    assert f"{path}: image '2.jpg' (id 2), annotation 9: " in caplog.text
    assert problem in caplog.text
    assert len(dataset.records[1].boxes) == 2  # the instance is left out, the others kept
    with pytest.raises(DataError, match=f"annotation 9: .*{problem}"):
        coco(path, strict=True, cache_index=False)


def test_coco_masks_are_cut_to_the_image_and_scaled_with_the_boxes(tmp_path, caplog):
    reaching = [[-4, 2, 12, 2, 12, 36]]  # past the left and bottom edges of the 40x30 image
    path = coco_set(tmp_path, [ann(1, 1, [0, 2, 12, 28], reaching),
                               ann(2, 1, [0, 0, 5, 5], [[50, 1, 60, 1, 60, 9]])])
    with caplog.at_level(logging.WARNING, logger="plugdet.data"):
        dataset = coco(path)
    assert dataset.skipped == {"bad_mask": 1}
    assert "annotation 2: the mask lies outside the 40x30 image" in caplog.text
    (cut,) = dataset.records[0].masks[0]
    assert cut[:, 0].min() == 0 and cut[:, 1].max() == HEIGHT
    np.testing.assert_allclose(dataset.records[0].gt.masks.bounding_boxes()[0], [0, 2, 12, 30])
    # an image file twice the recorded size: polygons scaled like the boxes
    Image.new("RGB", (2 * WIDTH, 2 * HEIGHT)).save(tmp_path / "img" / "1.jpg")
    scaled = coco(path, size_mismatch="rescale", cache_index=False)
    np.testing.assert_allclose(scaled.records[0].masks[0][0], 2 * cut)
    np.testing.assert_allclose(scaled.records[0].boxes[0], [0, 4, 24, 60])


def test_coco_without_masks_reads_boxes_only_and_stores_no_mask_arrays(tmp_path):
    path = coco_set(tmp_path, [*good_annotations(), ann(9, 2, [3, 3, 5, 5], [])])
    dataset = CocoDataset(str(path), img_dir=str(tmp_path / "img"))
    assert dataset.skipped == {} and not dataset.records.with_mask
    assert set(dataset.records.arrays()) == {name for name, _ in RecordIndex.FIELDS}
    assert dataset.records[0].gt.masks is None and dataset[0].gt.masks is None
    masked = coco(path)
    np.testing.assert_array_equal(masked.records.boxes[:2], dataset.records.boxes[:2])


def test_coco_masks_survive_the_index_cache(tmp_path, caplog):
    path = coco_set(tmp_path, good_annotations())
    parsed = coco(path)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="plugdet.data"):
        cached = coco(path)
    assert "(cached index " in caplog.text
    for got, expected in zip(cached.records, parsed.records, strict=True):
        for name in ("masks", "ignore_masks"):
            got_masks, expected_masks = getattr(got, name), getattr(expected, name)
            assert len(got_masks) == len(expected_masks)
            for got_parts, parts in zip(got_masks, expected_masks, strict=True):
                assert len(got_parts) == len(parts)
                for a, b in zip(got_parts, parts, strict=True):
                    np.testing.assert_array_equal(a, b)
    # the detection reading of the same file is cached apart, without masks
    assert not CocoDataset(str(path), img_dir=str(tmp_path / "img")).records.with_mask


def test_bitmap_polygons_trace_pixel_edges_with_half_pixel_corners():
    bitmap = np.zeros((6, 7), dtype=np.uint8)
    bitmap[2:4, 2:5] = 1
    (polygon,) = bitmap_polygons(bitmap)
    expected = {(2, 2.5), (2.5, 2), (4.5, 2), (5, 2.5), (5, 3.5), (4.5, 4), (2.5, 4), (2, 3.5)}
    assert {(float(x), float(y)) for x, y in polygon} == expected
    assert bitmap_polygons(np.zeros((3, 3), dtype=np.uint8)) == []
    # a hole is filled, two regions give two polygons
    ring = np.zeros((9, 9), dtype=np.uint8)
    ring[1:8, 1:8] = 1
    ring[3:6, 3:6] = 0
    ring_polygons = bitmap_polygons(np.concatenate([ring, ring], axis=1))
    assert len(ring_polygons) == 2
    assert PolygonMasks([ring_polygons[:1]], (9, 18)).areas()[0].item() == pytest.approx(
        49 - 4 / 8)


def test_read_segmentation_refuses_what_is_neither_polygons_nor_rle():
    assert "neither polygons nor RLE" in read_segmentation("abc", HEIGHT, WIDTH)
    assert "not [height, width]" in read_segmentation({"counts": "x"}, HEIGHT, WIDTH)
    assert "RLE mask is empty" in read_segmentation(
        compressed_rle(np.zeros((HEIGHT, WIDTH), np.uint8)), HEIGHT, WIDTH)


def random_polygons(rng: np.random.Generator, count: int) -> list[list[np.ndarray]]:
    return [[rng.uniform(0, 100, (int(rng.integers(3, 7)), 2)).astype(np.float32)
             for _ in range(int(rng.integers(0, 3)))] for _ in range(count)]


def masked_records(seed: int, count: int) -> list[ImageRecord]:
    rng = np.random.default_rng(seed)
    records = []
    for index in range(count):
        num, num_ignore = int(rng.integers(0, 4)), int(rng.integers(0, 2))
        records.append(ImageRecord(
            img_id=index, img_path=f"/x/{index}.jpg", height=100, width=120,
            boxes=rng.uniform(0, 90, (num, 4)), labels=rng.integers(0, 5, num),
            ignore_boxes=rng.uniform(0, 90, (num_ignore, 4)),
            ignore_labels=rng.integers(0, 5, num_ignore),
            masks=random_polygons(rng, num), ignore_masks=random_polygons(rng, num_ignore)))
    return records


def assert_same_masks(got: ImageRecord, expected: ImageRecord) -> None:
    for name in ("masks", "ignore_masks"):
        got_masks, expected_masks = getattr(got, name), getattr(expected, name)
        assert [len(p) for p in got_masks] == [len(p) for p in expected_masks], name
        for got_parts, parts in zip(got_masks, expected_masks, strict=True):
            for a, b in zip(got_parts, parts, strict=True):
                assert a.dtype == np.float32
                np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got.boxes, expected.boxes)


def test_record_index_round_trips_masks_through_arrays_and_the_cache_file(tmp_path):
    records = masked_records(0, 30)
    assert any(not parts for r in records for parts in r.masks)  # instances without a mask
    index = RecordIndex.from_records(records)
    assert index.with_mask
    for got, expected in zip(index, records, strict=True):
        assert_same_masks(got, expected)
    arrays = index.arrays()
    assert set(arrays) == {name for name, _ in RecordIndex.FIELDS + RecordIndex.MASK_FIELDS}
    assert index.nbytes == sum(a.nbytes for a in arrays.values())
    cache = IndexCache("Test", {}, [])
    cache.save(CachedIndex(index, ("a",), {0: 1}, {}, {}), [])
    loaded = cache.load()
    assert loaded is not None and loaded.index.with_mask
    for got, expected in zip(loaded.index, records, strict=True):
        assert_same_masks(got, expected)
    gt = loaded.index[3].gt
    assert gt.masks is not None and gt.masks.shape == (100, 120)
    assert torch.equal(gt.boxes, torch.from_numpy(records[3].boxes))


def test_record_index_refuses_inconsistent_mask_columns():
    records = masked_records(1, 5)
    with pytest.raises(ValueError, match="with and without masks"):
        RecordIndex.from_records([*records, ImageRecord(9, "/y.jpg", 5, 5, [], [], [], [])])
    arrays = RecordIndex.from_records(records).arrays()
    with pytest.raises(ValueError, match="all six mask arrays"):
        RecordIndex(**{k: v for k, v in arrays.items() if k != "mask_points"})
    arrays["mask_part_ends"] = arrays["mask_part_ends"][:-1]
    with pytest.raises(ValueError, match="mask columns do not match"):
        RecordIndex(**arrays)


def yolo_set(root: Path, labels: dict[str, str], size=(50, 20)) -> Path:
    for name in labels:
        path = root / "images" / "train" / f"{Path(name).stem}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (90, 30, 200)).save(path)
        label = root / "labels" / "train" / name
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(labels[name])
    (root / "data.yaml").write_text(yaml.safe_dump(
        {"path": str(root), "train": "images/train", "names": ["cat", "dog"]}))
    return root / "data.yaml"


def test_yolo_polygon_lines_give_pixel_polygons_and_their_bounds(tmp_path):
    data = yolo_set(tmp_path, {"a.txt": "0 0.1 0.1 0.5 0.1 0.3 0.9\n1 0 0 1 0 1 1 0 1\n",
                               "b.txt": ""})
    dataset = YoloDataset(str(data))
    assert dataset.with_mask and dataset.skipped == {}
    a, b = dataset.records
    np.testing.assert_allclose(a.masks[0][0], [[5, 2], [25, 2], [15, 18]], atol=1e-5)
    np.testing.assert_allclose(a.boxes, [[5, 2, 25, 18], [0, 0, 50, 20]], atol=1e-5)
    assert a.labels.tolist() == [0, 1]
    assert b.masks == [] and len(dataset[1].gt.masks) == 0
    assert isinstance(dataset[0].gt.masks, PolygonMasks)


def test_yolo_bad_polygon_lines_are_named_with_file_and_line(tmp_path, caplog):
    data = yolo_set(tmp_path, {"a.txt": "0 0.1 0.1 0.5 0.1 0.3 0.9\n"
                                        "0 0.1 0.1 1.5 0.1 0.3 0.9\n"
                                        "1 0.5 0.5 0.2 0.2\n"
                                        "0 0.1 0.1 0.5 0.1 0.3 0.9 0.2\n"})
    with caplog.at_level(logging.WARNING, logger="plugdet.data"):
        dataset = YoloDataset(str(data), with_mask=True)
    label_file = tmp_path / "labels" / "train" / "a.txt"
    assert dataset.skipped == {"bad_mask": 2, "malformed_box": 1}
    assert f"{label_file}:2: polygon point 2 ['1.5', '0.1'] has coordinates outside 0..1" \
        in caplog.text
    assert f"{label_file}:3: a box line without polygon" in caplog.text
    assert f"{label_file}:4: expected 5 columns" in caplog.text
    assert len(dataset.records[0].boxes) == 1
    with pytest.raises(DataError, match=r"a\.txt:2: polygon point 2"):
        YoloDataset(str(data), strict=True, cache_index=False)


def test_yolo_masks_are_detected_or_switched_off(tmp_path):
    boxes_only = yolo_set(tmp_path / "boxes", {"a.txt": "0 0.5 0.5 0.2 0.2\n"})
    assert not YoloDataset(str(boxes_only)).with_mask
    assert YoloDataset(str(boxes_only)).records[0].gt.masks is None
    polygons = yolo_set(tmp_path / "polygons", {"a.txt": "0 0.1 0.1 0.5 0.1 0.3 0.9\n"})
    off = YoloDataset(str(polygons), with_mask=False)
    assert not off.with_mask and off.records[0].masks is None
    np.testing.assert_allclose(off.records[0].boxes, [[5, 2, 25, 18]], atol=1e-5)
    cached = YoloDataset(str(polygons))
    assert cached.with_mask and YoloDataset(str(polygons)).with_mask
