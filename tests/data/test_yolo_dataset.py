"""YoloDataset (ultralytics layout) and the voc2yolo converter."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from core.data.datasets.voc import VocDataset
from core.data.datasets.yolo import YoloDataset
from core.data.datasets.yolo_yaml import label_path
from core.errors import DataError
from core.plugins import get_registries
from core.tools import voc2yolo

ROOT = Path(__file__).parents[2]
RACCOON = ROOT / "../shared/data/raccoon"
needs_raccoon = pytest.mark.skipif(
    not RACCOON.is_dir(), reason=f"raccoon data set not found at {RACCOON}"
)


def make_set(root: Path, images: dict[str, tuple[int, int]], labels: dict[str, str],
             names=("cat", "dog"), split="train", **extra) -> Path:
    """Images ``root/images/<split>/NAME`` of ``(w, h)``, label texts, and ``root/data.yaml``."""
    for name, size in images.items():
        path = root / "images" / split / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (90, 30, 200)).save(path)
    for name, text in labels.items():
        path = root / "labels" / split / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    content = {"path": str(root), split: f"images/{split}", "names": list(names), **extra}
    (root / "data.yaml").write_text(yaml.safe_dump(content))
    return root / "data.yaml"


def test_label_path_replaces_the_last_images_folder():
    assert label_path(Path("/d/images/x/images/train/a.b.jpg")) == Path(
        "/d/images/x/labels/train/a.b.txt")
    assert label_path(Path("/d/pics/a.png")) == Path("/d/pics/a.txt")


def test_boxes_in_pixels_and_background_images(tmp_path):
    data = make_set(tmp_path, {"a.jpg": (40, 20), "b.png": (10, 10), "c.jpg": (8, 8)},
                    {"a.txt": "0 0.5 0.5 0.5 0.5\n1 0.25 0.75 0.5 0.5\n", "b.txt": "\n"})
    dataset = YoloDataset(str(data), split="train")
    assert dataset.classes == ("cat", "dog") and len(dataset) == 3
    a, b, c = dataset.records
    assert (a.width, a.height) == (40, 20)
    np.testing.assert_allclose(a.boxes, [[10, 5, 30, 15], [0, 10, 20, 20]])
    assert a.labels.tolist() == [0, 1]
    assert len(b.boxes) == 0 and len(c.boxes) == 0  # empty and missing label files
    assert dataset.skipped == {} and dataset.metainfo["label_to_cat_id"] == {0: 1, 1: 2}
    sample = dataset[0]
    assert sample.gt.boxes.shape == (2, 4) and sample.ori_shape == (20, 40)
    assert len(YoloDataset(str(data), filter_empty_gt=True)) == 1


def test_random_boxes_match_a_direct_conversion(tmp_path):
    rng = np.random.default_rng(0)
    sizes = {f"{i}.jpg": (int(rng.integers(20, 90)), int(rng.integers(20, 90))) for i in range(6)}
    expected, texts = {}, {}
    for name, (w, h) in sizes.items():
        rows = []
        for _ in range(int(rng.integers(1, 5))):
            cx, cy = rng.uniform(0.3, 0.7, 2)
            bw, bh = rng.uniform(0.05, 0.5, 2)
            rows.append((int(rng.integers(0, 3)), cx, cy, bw, bh))
        texts[Path(name).with_suffix(".txt").name] = "".join(
            f"{c} {x:.6f} {y:.6f} {u:.6f} {v:.6f}\n" for c, x, y, u, v in rows)
        expected[name] = [(c, [(float(f"{x:.6f}") - float(f"{u:.6f}") / 2) * w,
                               (float(f"{y:.6f}") - float(f"{v:.6f}") / 2) * h,
                               (float(f"{x:.6f}") + float(f"{u:.6f}") / 2) * w,
                               (float(f"{y:.6f}") + float(f"{v:.6f}") / 2) * h])
                          for c, x, y, u, v in rows]
    data = make_set(tmp_path, sizes, texts, names=("a", "b", "c"))
    dataset = YoloDataset(str(data))
    for record in dataset.records:
        want = expected[Path(record.img_path).name]
        assert record.labels.tolist() == [c for c, _ in want]
        np.testing.assert_allclose(record.boxes, [b for _, b in want], atol=1e-4)


BAD_LINES = [
    ("0 0.5 0.5 0.5\n", "malformed_box", "expected 5 columns"),
    ("0 0.5 0.5 0.5 0.5 0.1\n", "malformed_box", "expected 5 columns"),
    ("0 0.5 x 0.5 0.5\n", "malformed_box", "non-numeric"),
    ("0 0.5 0.5 nan 0.5\n", "malformed_box", "non-finite"),
    ("0 1.5 0.5 0.2 0.2\n", "outside_box", "outside 0..1"),
    ("0 0.5 0.5 -0.2 0.2\n", "outside_box", "outside 0..1"),
    ("2 0.5 0.5 0.2 0.2\n", "unknown_class", "class id 2 is not one of 0..1"),
    ("0.5 0.5 0.5 0.2 0.2\n", "unknown_class", "class id 0.5"),
    ("1 0.5 0.5 0.0 0.2\n", "degenerate_box", "zero width or height"),
]


@pytest.mark.parametrize(("line", "reason", "message"), BAD_LINES)
def test_bad_lines_are_skipped_with_file_and_line(tmp_path, caplog, line, reason, message):
    text = "0 0.5 0.5 0.2 0.2\n\n" + line + "1 0.5 0.5 0.4 0.4\n"
    data = make_set(tmp_path, {"a.jpg": (50, 50)}, {"a.txt": text})
    with caplog.at_level(logging.WARNING, logger="plugdet.data"):
        dataset = YoloDataset(str(data))
    assert dataset.skipped == {reason: 1}
    assert dataset.records[0].labels.tolist() == [0, 1]  # the good lines around it stay
    where = f"{tmp_path / 'labels' / 'train' / 'a.txt'}:3"
    assert any(where in r.getMessage() and message in r.getMessage() for r in caplog.records)
    with pytest.raises(DataError, match=rf"a\.txt:3: .*{message}.*strict"):
        YoloDataset(str(data), strict=True)


def test_box_past_the_border_is_clipped_and_counted(tmp_path):
    data = make_set(tmp_path, {"a.jpg": (100, 50)}, {"a.txt": "0 0.9 0.5 0.4 0.2\n"
                                                              "1 0.5 0.500003 1.0 1.0\n"})
    dataset = YoloDataset(str(data))
    np.testing.assert_allclose(dataset.records[0].boxes, [[70, 20, 100, 30], [0, 0, 100, 50]],
                               atol=1e-3)
    assert dataset.repaired == {"clipped_box": 1}  # the rounding overshoot is not counted


def test_names_mapping_list_files_and_several_folders(tmp_path):
    make_set(tmp_path, {"a.jpg": (30, 30)}, {"a.txt": "1 0.5 0.5 0.2 0.2\n"}, split="train")
    make_set(tmp_path, {"b.jpg": (30, 30)}, {"b.txt": "0 0.5 0.5 0.2 0.2\n"}, split="extra")
    (tmp_path / "val.txt").write_text("images/extra/b.jpg\n\nimages/train/a.jpg\n")
    content = {"path": ".", "train": ["images/train", "images/extra"], "val": "val.txt",
               "names": {1: "dog", 0: "cat"}, "nc": 2}
    data = tmp_path / "sub.yaml"
    data.write_text(yaml.safe_dump(content))
    train = YoloDataset(str(data), split="train")
    assert train.classes == ("cat", "dog")
    assert [Path(r.img_path).name for r in train.records] == ["a.jpg", "b.jpg"]
    val = get_registries().build("dataset", {"type": "YoloDataset", "data_yaml": str(data),
                                             "split": "val"})
    assert [r.labels.tolist() for r in val.records] == [[0], [1]]


@pytest.mark.parametrize(("content", "message"), [
    (None, "dataset YAML not found"),
    ("names: [a]\ntrain: [", "not a valid YAML"),
    ("- a\n", "expected a mapping"),
    ("train: images/train\n", "names: expected a non-empty list"),
    ("train: images/train\nnames: {0: a, 2: b}\n", r"class ids must be 0..1"),
    ("train: images/train\nnames: [a]\nnc: 2\n", "nc = 2 but names lists 1"),
    ("val: images/train\nnames: [a]\n", r"no 'train' split \(the file has \['val'\]\)"),
    ("train: nowhere\nnames: [a]\n", "neither an image folder nor a .txt list"),
])
def test_bad_yaml_names_the_file(tmp_path, content, message):
    data = tmp_path / "data.yaml"
    if content is not None:
        data.write_text(content)
    with pytest.raises(DataError, match=message):
        YoloDataset(str(data))


def test_missing_listed_image_is_skipped(tmp_path):
    make_set(tmp_path, {"a.jpg": (30, 30)}, {})
    (tmp_path / "list.txt").write_text("images/train/a.jpg\nimages/train/gone.jpg\n")
    data = tmp_path / "l.yaml"
    data.write_text(yaml.safe_dump({"train": "list.txt", "names": ["a"]}))
    dataset = YoloDataset(str(data))
    assert len(dataset) == 1 and dataset.skipped == {"missing_image": 1}


def test_voc2yolo_reports_bad_arguments(tmp_path, capsys):
    assert voc2yolo.main([str(tmp_path / "none"), "--split", "train=t.txt",
                          "--out", str(tmp_path / "o")]) == 2
    assert "VOC data_root not found" in capsys.readouterr().err
    assert voc2yolo.main([str(tmp_path), "--split", "train", "--out", str(tmp_path / "o")]) == 2
    assert "expected NAME=SPLIT_FILE" in capsys.readouterr().err


@needs_raccoon
@pytest.mark.parametrize("link", [False, True])
def test_raccoon_converted_reads_back_like_voc(tmp_path, capsys, link):
    args = [str(RACCOON), "--ann-dir", "annotations", "--img-dir", "images",
            "--split", "train=train.txt", "--split", "val=val.txt", "--out", str(tmp_path)]
    assert voc2yolo.main(args + (["--link"] if link else [])) == 0
    assert "train 160 images / 173 boxes, val 40 images / 44 boxes" in capsys.readouterr().out
    total = 0
    for split, count in (("train", 160), ("val", 40)):
        yolo = YoloDataset(str(tmp_path / "raccoon.yaml"), split=split)
        voc = VocDataset(str(RACCOON), ann_dir="annotations", img_dir="images",
                         split_file=f"{split}.txt", classes=["raccoon"])
        assert len(yolo) == len(voc) == count and yolo.classes == ("raccoon",)
        assert yolo.skipped == {} and yolo.repaired == {}
        by_name = {Path(r.img_path).name: r for r in voc.records}
        for record in yolo.records:
            reference = by_name[Path(record.img_path).name]
            assert (record.width, record.height) == (reference.width, reference.height)
            assert record.labels.tolist() == reference.labels.tolist()
            np.testing.assert_allclose(record.boxes, reference.boxes, atol=1.0)
            total += len(record.boxes)
        image = tmp_path / "images" / split / Path(yolo.records[0].img_path).name
        assert image.is_symlink() == link
    assert total == 217
