"""Recorded image sizes against the files: EXIF orientation, images resized after labelling."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data.datasets.coco import CocoDataset
from core.data.datasets.voc import VocDataset
from core.data.transforms.loading import LoadImage
from core.errors import ConfigError, DataError

ORIENTATION = 0x0112


def _photo(path: Path, size: tuple[int, int], block: tuple[int, int, int, int],
           orientation: int = 1) -> None:
    """A black ``size`` (w, h) JPEG with a white ``block`` (xyxy, stored pixels)."""
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    x1, y1, x2, y2 = block
    pixels[y1:y2, x1:x2] = 255
    exif = Image.Exif()
    if orientation != 1:
        exif[ORIENTATION] = orientation
    Image.fromarray(pixels).save(path, quality=95, exif=exif)


def _voc(root: Path, recorded: tuple[int, int], box: tuple[int, int, int, int]) -> dict:
    for folder in ("annotations", "images"):
        (root / folder).mkdir(exist_ok=True)
    coords = "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box,
                                                       strict=True))
    (root / "annotations" / "a.xml").write_text(
        f"<annotation><filename>a.jpg</filename><size><width>{recorded[0]}</width>"
        f"<height>{recorded[1]}</height></size><object><name>cat</name>"
        f"<bndbox>{coords}</bndbox></object></annotation>")
    return {"data_root": str(root), "ann_dir": "annotations", "img_dir": "images",
            "split_file": "", "classes": ["cat"], "pipeline": [LoadImage()]}


def _white_bounds(image) -> list[int]:
    ys, xs = np.nonzero(image[0].numpy() > 128)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def test_exif_rotated_photo_is_turned_when_the_xml_records_the_turned_size(tmp_path):
    # stored 60 wide x 40 high, orientation 6 (turn 90 degrees clockwise to view): 40 x 60
    _photo(tmp_path / "a.jpg", (60, 40), block=(0, 0, 20, 10), orientation=6)
    layout = _voc(tmp_path, recorded=(40, 60), box=(30, 0, 40, 20))
    (tmp_path / "a.jpg").rename(tmp_path / "images" / "a.jpg")
    dataset = VocDataset(**layout)
    assert dataset.skipped == {} and dataset.repaired == {"exif_turned": 1}
    sample = dataset[0]
    assert sample.image.shape == (3, 60, 40)
    assert sample.gt.boxes.tolist() == [[30.0, 0.0, 40.0, 20.0]]
    assert _white_bounds(sample.image) == [30, 0, 40, 20]  # the box lies on the object


def test_exif_tag_is_left_alone_when_the_raw_size_agrees(tmp_path):
    _photo(tmp_path / "a.jpg", (60, 40), block=(0, 0, 20, 10), orientation=6)
    layout = _voc(tmp_path, recorded=(60, 40), box=(0, 0, 20, 10))
    (tmp_path / "a.jpg").rename(tmp_path / "images" / "a.jpg")
    sample = VocDataset(**layout)[0]
    assert sample.image.shape == (3, 40, 60)
    assert _white_bounds(sample.image) == [0, 0, 20, 10]


def test_photo_resized_after_labelling_is_skipped_counted_and_logged(tmp_path, caplog):
    layout = _voc(tmp_path, recorded=(120, 80), box=(0, 0, 40, 20))
    _photo(tmp_path / "images" / "a.jpg", (60, 40), block=(0, 0, 20, 10))
    layout["split_file"] = ""
    (tmp_path / "annotations" / "b.xml").write_text(
        (tmp_path / "annotations" / "a.xml").read_text().replace("a.jpg", "b.jpg")
        .replace("<width>120</width><height>80</height>", "<width>60</width>"
                 "<height>40</height>"))
    _photo(tmp_path / "images" / "b.jpg", (60, 40), block=(0, 0, 20, 10))
    with caplog.at_level(logging.WARNING, logger="plugdet.data"):
        dataset = VocDataset(**layout)
    assert len(dataset) == 1 and dataset.skipped == {"size_mismatch": 1}
    assert "a.xml: recorded size 120x80 but" in caplog.text and "is 60x40" in caplog.text
    with pytest.raises(DataError, match=r"a\.xml: recorded size 120x80"):
        VocDataset(strict=True, **layout)


def test_photo_resized_after_labelling_has_its_boxes_rescaled_when_asked(tmp_path, caplog):
    layout = _voc(tmp_path, recorded=(120, 80), box=(0, 0, 40, 20))
    _photo(tmp_path / "images" / "a.jpg", (60, 40), block=(0, 0, 20, 10))
    with caplog.at_level(logging.WARNING, logger="plugdet.data"):
        dataset = VocDataset(size_mismatch="rescale", **layout)
    assert dataset.repaired == {"rescaled_boxes": 1} and dataset.skipped == {}
    sample = dataset[0]
    assert sample.gt.boxes.tolist() == [[0.0, 0.0, 20.0, 10.0]]
    assert _white_bounds(sample.image) == [0, 0, 20, 10]
    assert "boxes scaled to 60x40" in caplog.text


def test_coco_width_and_height_are_checked_too(tmp_path):
    (tmp_path / "img").mkdir()
    _photo(tmp_path / "img" / "1.jpg", (60, 40), block=(0, 0, 20, 10))
    _photo(tmp_path / "img" / "2.jpg", (60, 40), block=(0, 0, 20, 10))
    content = {"images": [{"id": 1, "file_name": "1.jpg", "width": 60, "height": 40},
                          {"id": 2, "file_name": "2.jpg", "width": 90, "height": 40}],
               "annotations": [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [0, 0, 9, 9]}],
               "categories": [{"id": 1, "name": "cat"}]}
    (tmp_path / "ann.json").write_text(json.dumps(content))
    dataset = CocoDataset(ann_file=str(tmp_path / "ann.json"), img_dir=str(tmp_path / "img"))
    assert len(dataset) == 1 and dataset.skipped == {"size_mismatch": 1}


def test_unknown_option_values_are_config_errors(tmp_path):
    layout = _voc(tmp_path, recorded=(60, 40), box=(0, 0, 20, 10))
    with pytest.raises(ConfigError, match=r"VocDataset\.size_mismatch: expected one of"):
        VocDataset(size_mismatch="stretch", **layout)
