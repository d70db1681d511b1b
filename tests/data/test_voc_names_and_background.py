"""VOC split files with spaces and non-ASCII names; background-only images as negatives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data.datasets.voc import VocDataset


def _write(root: Path, name: str, objects: str, split_line: str | None = None) -> str:
    for folder in ("annotations", "images"):
        (root / folder).mkdir(exist_ok=True)
    (root / "annotations" / f"{name}.xml").write_text(
        f"<annotation><filename>{name}.jpg</filename><size><width>60</width>"
        f"<height>40</height></size>{objects}</annotation>", encoding="utf-8")
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(root / "images" / f"{name}.jpg")
    return split_line or name


CAT = ("<object><name>cat</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax>"
       "<ymax>20</ymax></bndbox></object>")


def _layout(root: Path, lines: list[str]) -> dict[str, str]:
    (root / "train.txt").write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    return {"data_root": str(root), "ann_dir": "annotations", "img_dir": "images",
            "split_file": "train.txt"}


def test_split_names_keep_spaces_and_non_ascii_characters(tmp_path, monkeypatch):
    monkeypatch.setenv("LC_ALL", "C")  # the file is read as UTF-8 whatever the locale
    lines = [_write(tmp_path, "my raccoon 1", CAT), _write(tmp_path, "mapache_ñ_é", CAT),
             _write(tmp_path, "plain", CAT, split_line="plain  1")]  # per-class list column
    dataset = VocDataset(classes=["cat"], **_layout(tmp_path, lines))
    assert dataset.skipped == {}
    assert [Path(r.img_path).name for r in dataset.records] == [
        "my raccoon 1.jpg", "mapache_ñ_é.jpg", "plain.jpg"]


def test_background_images_are_kept_as_negatives_when_asked(tmp_path):
    lines = [_write(tmp_path, "with_cat", CAT), _write(tmp_path, "empty", "")]
    layout = _layout(tmp_path, lines)
    default = VocDataset(classes=["cat"], **layout)
    assert len(default) == 1 and default.skipped == {"no_objects": 1}
    kept = VocDataset(classes=["cat"], keep_background=True, **layout)
    assert len(kept) == 2 and kept.skipped == {}
    background = kept.raw_sample(1)
    assert background.gt.boxes.shape == (0, 4) and background.ori_shape == (40, 60)


def test_split_line_of_a_missing_name_is_reported_whole(tmp_path):
    lines = [_write(tmp_path, "a", CAT), "no such image"]
    dataset = VocDataset(classes=["cat"], **_layout(tmp_path, lines))
    assert dataset.skipped == {"missing_annotation": 1}
    with pytest.raises(Exception, match="'no such image'"):
        VocDataset(classes=["cat"], strict=True, **_layout(tmp_path, lines))
