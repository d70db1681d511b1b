"""VocDataset: both layouts, difficult boxes, the raccoon set and bad input."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data.datasets.voc import VocDataset
from core.errors import DataError

RACCOON = Path(__file__).parents[2] / "../shared/data/raccoon"


def xml(filename, objects, size=(60, 40)):
    parts = [f"<annotation><filename>{filename}</filename>"]
    if size is not None:
        parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height></size>")
    for name, box, difficult in objects:
        tags = ("xmin", "ymin", "xmax", "ymax")
        coords = "".join(f"<{k}>{v}</{k}>" for k, v in zip(tags, box, strict=True))
        parts.append(
            f"<object><name>{name}</name><difficult>{difficult}</difficult>"
            f"<bndbox>{coords}</bndbox></object>"
        )
    return "".join(parts) + "</annotation>"


def make_voc(root: Path, entries: dict[str, str], flat: bool) -> dict[str, str]:
    """Write XML + 60x40 JPEGs; returns the constructor's layout arguments."""
    ann_dir, img_dir = ("annotations", "images") if flat else ("Annotations", "JPEGImages")
    split = "train.txt" if flat else "ImageSets/Main/trainval.txt"
    for folder in (ann_dir, img_dir, str(Path(split).parent)):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name, content in entries.items():
        (root / ann_dir / f"{name}.xml").write_text(content)
        Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(root / img_dir / f"{name}.jpg")
    (root / split).write_text("\n".join(entries) + "\n")
    return {"data_root": str(root), "ann_dir": ann_dir, "img_dir": img_dir, "split_file": split}


GOOD = {
    "a": xml("a.jpg", [("cat", (1, 2, 30, 20), 0), ("dog", (10, 10, 50, 35), 1)]),
    "b": xml("b.jpg", [("dog", (5, 5, 25, 25), 0)]),
}


@pytest.mark.parametrize("flat", [False, True])
def test_both_layouts_read_boxes_labels_and_difficult(tmp_path, flat):
    layout = make_voc(tmp_path, GOOD, flat)
    dataset = VocDataset(classes=["cat", "dog"], **layout)
    assert len(dataset) == 2 and dataset.skipped == {}
    first = dataset.raw_sample(0)
    assert first.gt.boxes.tolist() == [[1.0, 2.0, 30.0, 20.0]]
    assert first.gt.labels.tolist() == [0]
    assert first.ignore.boxes.tolist() == [[10.0, 10.0, 50.0, 35.0]]  # difficult -> ignore
    assert first.ignore.labels.tolist() == [1]
    assert first.ori_shape == (40, 60)
    assert dataset.label_to_cat_id == {0: 1, 1: 2}


def test_without_split_file_every_xml_is_read(tmp_path):
    layout = make_voc(tmp_path, GOOD, flat=True)
    dataset = VocDataset(classes=["cat", "dog"], **{**layout, "split_file": ""})
    assert len(dataset) == 2


def test_size_missing_from_xml_is_read_from_the_image(tmp_path):
    layout = make_voc(tmp_path, {"a": xml("a.jpg", [("cat", (1, 1, 9, 9), 0)], size=None)}, True)
    assert VocDataset(classes=["cat"], **layout).raw_sample(0).ori_shape == (40, 60)


def test_bad_xml_content_is_skipped_and_counted(tmp_path, caplog):
    entries = {
        **GOOD,
        "empty": xml("empty.jpg", []),
        "broken": "<annotation><object>",
        "boxes": xml(
            "boxes.jpg",
            [
                ("cat", (30, 10, 20, 30), 0),  # xmax < xmin
                ("cat", (50, 30, 80, 60), 0),  # partly outside: clipped
                ("cat", (70, 50, 90, 60), 0),  # outside
                ("horse", (1, 1, 5, 5), 0),  # unknown class
                ("cat", ("a", 1, 5, 5), 0),  # not a number
            ],
        ),
    }
    layout = make_voc(tmp_path, entries, flat=True)
    (tmp_path / "train.txt").write_text("\n".join([*entries, "ghost"]))
    with caplog.at_level(logging.WARNING, logger="plugdet.data"):
        dataset = VocDataset(classes=["cat", "dog"], **layout)
    assert len(dataset) == 3
    assert dataset.skipped == {
        "no_objects": 1,
        "bad_xml": 1,
        "degenerate_box": 1,
        "outside_box": 1,
        "unknown_class": 1,
        "malformed_box": 1,
        "missing_annotation": 1,
    }
    assert dataset.repaired == {"clipped_box": 1}
    assert dataset.raw_sample(2).gt.boxes.tolist() == [[50.0, 30.0, 60.0, 40.0]]
    assert "empty.xml: XML has no <object>" in caplog.text
    assert "boxes.xml: object 0: box [30.0, 10.0, 20.0, 30.0] has xmax <= xmin" in caplog.text


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (xml("e.jpg", []), "e.xml: XML has no <object>"),
        ("<annotation", "e.xml: not valid XML"),
        (xml("e.jpg", [("cat", (9, 1, 2, 5), 0)]), "e.xml: object 0: box .* xmax <= xmin"),
    ],
)
def test_strict_raises_naming_the_file(tmp_path, entry, message):
    layout = make_voc(tmp_path, {"e": entry}, flat=True)
    with pytest.raises(DataError, match=message):
        VocDataset(classes=["cat"], strict=True, **layout)


def test_missing_image_and_split_problems(tmp_path):
    layout = make_voc(tmp_path, GOOD, flat=True)
    (tmp_path / "images" / "b.jpg").unlink()
    dataset = VocDataset(classes=["cat", "dog"], **layout)
    assert len(dataset) == 1 and dataset.skipped == {"missing_image": 1}
    (tmp_path / "train.txt").write_text("\n")
    with pytest.raises(DataError, match=r"train\.txt: split file lists no images"):
        VocDataset(classes=["cat", "dog"], **layout)
    with pytest.raises(DataError, match="split file not found"):
        VocDataset(classes=["cat"], **{**layout, "split_file": "nope.txt"})
    with pytest.raises(DataError, match="data_root not found"):
        VocDataset(data_root=str(tmp_path / "absent"))


@pytest.mark.skipif(not RACCOON.is_dir(), reason=f"raccoon data set not found at {RACCOON}")
def test_raccoon_counts():
    layout = {"data_root": str(RACCOON), "ann_dir": "annotations", "img_dir": "images"}
    train = VocDataset(split_file="train.txt", classes=["raccoon"], **layout)
    val = VocDataset(split_file="val.txt", classes=["raccoon"], **layout)
    assert (len(train), len(val)) == (160, 40)
    boxes = sum(len(r.gt) + len(r.ignore) for r in [*train.records, *val.records])
    assert boxes == 217
    assert train.skipped == {} and val.skipped == {}
    assert {r.img_id for r in train.records} == set(range(160))
