"""YoloDataset pairs images with label files by name: label files with no image and label
names that differ from the image's only in case are named, never read as background."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import yaml
from PIL import Image

from core.data.datasets.yolo import YoloDataset
from core.errors import DataError

BOX = "0 0.5 0.5 0.5 0.5\n"


def make_yolo(root, images: list[str], labels: dict[str, str], split: str = "train"):
    """``root/images/<split>/<image>`` (40x20) and ``root/labels/<split>/<label>``; the YAML."""
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    for name in images:
        Image.new("RGB", (40, 20), (20, 40, 60)).save(root / "images" / split / name)
    for name, text in labels.items():
        (root / "labels" / split / name).write_text(text)
    data = root / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(root), split: f"images/{split}",
                                    "names": ["raccoon"]}))
    return data


def test_label_differing_only_in_case_is_paired_and_named(tmp_path, caplog):
    data = make_yolo(tmp_path, ["Raccoon-1.jpg", "raccoon-2.jpg"],
                     {"raccoon-1.txt": BOX, "raccoon-2.txt": BOX})
    with caplog.at_level(logging.WARNING, logger="plugdet.data"):
        dataset = YoloDataset(str(data))
    first = next(r for r in dataset.records if r.img_path.endswith("Raccoon-1.jpg"))
    np.testing.assert_allclose(first.boxes, [[10, 5, 30, 15]])  # not a background image
    assert dataset.repaired == {"label_case": 1} and dataset.skipped == {}
    labels = tmp_path / "labels" / "train"
    assert f"{tmp_path / 'images' / 'train' / 'Raccoon-1.jpg'}" in caplog.text
    assert f"{labels / 'raccoon-1.txt'}" in caplog.text and "only in case" in caplog.text
    with pytest.raises(DataError, match=r"Raccoon-1\.jpg.*raccoon-1\.txt.*strict"):
        YoloDataset(str(data), strict=True)


def test_label_file_without_an_image_is_named_and_counted(tmp_path, caplog):
    data = make_yolo(tmp_path, ["a.jpg"],
                     {"a.txt": BOX, "ghost.txt": BOX, "classes.txt": "raccoon\n"})
    with caplog.at_level(logging.WARNING, logger="plugdet.data"):
        dataset = YoloDataset(str(data))
    assert len(dataset) == 1 and dataset.skipped == {"label_without_image": 1}
    assert f"{tmp_path / 'labels' / 'train' / 'ghost.txt'}: no image" in caplog.text
    assert "classes.txt" not in caplog.text  # the class list labelling tools write is no label
    with pytest.raises(DataError, match=r"ghost\.txt: no image.*strict"):
        YoloDataset(str(data), strict=True)


def test_images_outside_a_listed_split_still_own_their_labels(tmp_path, caplog):
    make_yolo(tmp_path, ["a.jpg", "b.jpg"], {"a.txt": BOX, "b.txt": BOX})
    (tmp_path / "train.txt").write_text("images/train/a.jpg\n")
    data = tmp_path / "list.yaml"
    data.write_text(yaml.safe_dump({"path": str(tmp_path), "train": "train.txt",
                                    "names": ["raccoon"]}))
    with caplog.at_level(logging.WARNING, logger="plugdet.data"):
        dataset = YoloDataset(str(data))
    assert len(dataset) == 1 and dataset.skipped == {} and dataset.repaired == {}
    assert caplog.text == ""


def test_several_labels_differing_in_case_leave_the_image_out(tmp_path, caplog):
    data = make_yolo(tmp_path, ["Ab.jpg", "c.jpg"], {"ab.txt": BOX, "AB.txt": BOX, "c.txt": BOX})
    with caplog.at_level(logging.WARNING, logger="plugdet.data"):
        dataset = YoloDataset(str(data))
    assert len(dataset) == 1 and dataset.skipped == {"ambiguous_label": 1}
    assert "Ab.jpg" in caplog.text and "AB.txt" in caplog.text and "ab.txt" in caplog.text


def test_images_without_any_label_file_stay_background_silently(tmp_path, caplog):
    data = make_yolo(tmp_path, ["a.jpg", "b.jpg"], {"a.txt": BOX})
    with caplog.at_level(logging.WARNING, logger="plugdet.data"):
        dataset = YoloDataset(str(data))
    assert [len(r.boxes) for r in dataset.records] == [1, 0]
    assert dataset.skipped == {} and caplog.text == ""


def test_one_label_differing_in_case_from_several_images_is_given_to_none(tmp_path):
    data = make_yolo(tmp_path, ["Ab.jpg", "AB.png", "c.jpg"], {"ab.txt": BOX, "c.txt": BOX})
    dataset = YoloDataset(str(data))
    assert len(dataset) == 1 and dataset.skipped == {"ambiguous_label": 2}
