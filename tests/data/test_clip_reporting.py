"""Boxes reaching past the image are clipped and the file is named (once per file)."""

from __future__ import annotations

import logging

import numpy as np
import yaml
from PIL import Image

from core.data.datasets.voc import VocDataset
from core.data.datasets.yolo import YoloDataset


def test_yolo_box_past_the_edge_names_the_label_file_once(tmp_path, caplog):
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    for name in ("a", "b"):
        Image.new("RGB", (100, 50)).save(tmp_path / "images" / "train" / f"{name}.jpg")
    (tmp_path / "labels" / "train" / "a.txt").write_text("0 0.9 0.5 0.4 0.2\n0 0.1 0.5 0.4 0.2\n")
    (tmp_path / "labels" / "train" / "b.txt").write_text("0 0.5 0.5 0.4 0.2\n")
    data = tmp_path / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(tmp_path), "train": "images/train",
                                    "names": ["cat"]}))
    with caplog.at_level(logging.WARNING, logger="plugdet.data"):
        dataset = YoloDataset(str(data))
    np.testing.assert_allclose(dataset.records[0].boxes, [[70, 20, 100, 30], [0, 20, 30, 30]],
                               atol=1e-3)
    assert dataset.repaired == {"clipped_box": 2}
    label = tmp_path / "labels" / "train" / "a.txt"
    clipped = [r.getMessage() for r in caplog.records if "clipped" in r.getMessage()]
    assert len(clipped) == 1 and f"{label}" in clipped[0]
    assert "b.txt" not in caplog.text


def test_voc_negative_box_names_the_xml_file(tmp_path, caplog):
    for folder in ("annotations", "images"):
        (tmp_path / folder).mkdir()
    Image.new("RGB", (80, 60)).save(tmp_path / "images" / "a.jpg")
    (tmp_path / "annotations" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>80</width><height>60</height>"
        "</size><object><name>cat</name><bndbox><xmin>-5</xmin><ymin>10</ymin><xmax>30</xmax>"
        "<ymax>40</ymax></bndbox></object></annotation>")
    with caplog.at_level(logging.WARNING, logger="plugdet.data"):
        dataset = VocDataset(str(tmp_path), ann_dir="annotations", img_dir="images",
                             split_file="", classes=["cat"])
    assert dataset.records[0].boxes.tolist() == [[0.0, 10.0, 30.0, 40.0]]
    assert dataset.repaired == {"clipped_box": 1}
    assert f"{tmp_path / 'annotations' / 'a.xml'}: object 0: box [-5.0, 10.0, 30.0, 40.0]" \
        in caplog.text and "clipped" in caplog.text
