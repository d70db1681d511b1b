"""voc2coco, browse_dataset and the base dataset configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from core.config import load_config
from core.data.datasets.coco import CocoDataset
from core.data.loader import build_dataloader
from core.engine.full_config import load_full_config
from core.plugins import get_registries
from core.tools import browse_dataset, voc2coco

ROOT = Path(__file__).parents[2]
RACCOON = ROOT / "../shared/data/raccoon"
BASE = ROOT / "core/configs/_base_/datasets"
needs_raccoon = pytest.mark.skipif(
    not RACCOON.is_dir(), reason=f"raccoon data set not found at {RACCOON}"
)


def write_xml(
    folder: Path, name: str, objects: str, size="<size><width>50</width><height>40</height></size>"
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.xml").write_text(
        f"<annotation><filename>{name}.jpg</filename>{size}{objects}</annotation>"
    )


def obj(name, box, difficult=0):
    coords = "".join(
        f"<{tag}>{value}</{tag}>"
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True)
    )
    return (
        f"<object><name>{name}</name><difficult>{difficult}</difficult>"
        f"<bndbox>{coords}</bndbox></object>"
    )


def test_voc2coco_converts_and_reports(tmp_path, capsys):
    ann = tmp_path / "ann"
    write_xml(ann, "a", obj("dog", (1, 2, 11, 12)) + obj("cat", (5, 5, 60, 30), difficult=1))
    write_xml(ann, "b", obj("dog", (9, 9, 3, 30)))  # degenerate
    write_xml(ann, "c", "")  # no objects
    out = tmp_path / "out" / "coco.json"
    assert voc2coco.main([str(ann), "--out", str(out)]) == 0
    content = json.loads(out.read_text())
    assert [c["name"] for c in content["categories"]] == ["cat", "dog"]
    assert [i["file_name"] for i in content["images"]] == ["a.jpg", "b.jpg"]
    first, second = content["annotations"]
    assert first["bbox"] == [1.0, 2.0, 10.0, 10.0] and first["category_id"] == 2
    assert second["bbox"] == [5.0, 5.0, 45.0, 25.0] and second["iscrowd"] == 1  # clipped
    err = capsys.readouterr().err
    assert "degenerate_box: 1" in err and "no_objects: 1" in err and "clipped_box: 1" in err
    split = tmp_path / "split.txt"
    split.write_text("a\n")
    assert voc2coco.main([str(ann), "--split", str(split), "--out", str(out)]) == 0
    assert len(json.loads(out.read_text())["images"]) == 1
    assert voc2coco.main([str(tmp_path / "none"), "--out", str(out)]) == 2


@needs_raccoon
def test_voc2coco_raccoon_reads_back_as_coco(tmp_path):
    out = tmp_path / "train.json"
    args = [str(RACCOON / "annotations"), "--split", str(RACCOON / "train.txt")]
    assert voc2coco.main([*args, "--out", str(out)]) == 0
    dataset = CocoDataset(ann_file=str(out), img_dir=str(RACCOON / "images"))
    assert len(dataset) == 160 and dataset.classes == ("raccoon",)
    assert sum(len(r.gt) for r in dataset.records) == 173


def test_browse_dataset_writes_denormalized_pngs(tmp_path, monkeypatch):
    config = tmp_path / "browse.toml"
    config.write_text(
        f"""
[train_dataloader.dataset]
type = "ShapesDataset"
num_images = 6
image_size = 96
object_size = [20, 40]
data_root = "{tmp_path / "cache"}"
pipeline = [{{type = "LoadImage"}}, {{type = "RandomFlip", prob = 1.0}}, {{type = "Normalize"}},
            {{type = "Pad", size_divisor = 64}}]
"""
    )
    assert browse_dataset.main([str(config), "--out", str(tmp_path / "vis"), "--n", "3"]) == 0
    written = sorted((tmp_path / "vis").glob("*.png"))
    assert len(written) == 3
    image = Image.open(written[0])
    assert image.size == (96, 96)  # padding cropped away
    pixels = image.convert("RGB").getcolors(96 * 96)
    assert len(pixels) > 20  # a real picture, not a flat or garbage image


def test_shapes_config_builds_loaders_and_evaluator(tmp_path, monkeypatch):
    monkeypatch.setenv("PLUGDET_CACHE", str(tmp_path))
    cfg = load_full_config(
        str(BASE / "shapes.toml"),
        overrides=[
            "train_dataloader.dataset.num_images=8",
            "train_dataloader.num_workers=0",
        ],
    )
    loader = build_dataloader(cfg["train_dataloader"], path="train_dataloader", seed=0)
    batch = next(iter(loader))
    assert batch.images.shape == (8, 3, 256, 256)
    metric = get_registries().build("metric", cfg["val_evaluator"], path="val_evaluator")
    assert type(metric).__name__ == "CocoMetric"
    assert cfg["val_dataloader"]["dataset"]["split"] == "val"


@needs_raccoon
def test_raccoon_config_resolves_data_root_against_the_working_directory(monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = load_config(str(BASE / "raccoon.toml"))
    for key, count in (("train_dataloader", 160), ("val_dataloader", 40)):
        loader = build_dataloader({**cfg[key], "num_workers": 0}, path=key, seed=0)
        assert len(loader.dataset) == count
    batch = next(iter(loader))
    assert batch.images.shape[0] == 4 and max(batch.images.shape[2:]) == 512
    assert [m["type"] for m in cfg["val_evaluator"]] == ["VocMetric", "CocoMetric"]


def test_coco_config_names_the_missing_annotation_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(str(BASE / "coco.toml"))
    # the registry reports the dataset's DataError as a ConfigError naming the config path
    with pytest.raises(
        ValueError,
        match=r"val_dataloader\.dataset: .*instances_val2017\.json: "
        "annotation file not found",
    ):
        build_dataloader(cfg["val_dataloader"], path="val_dataloader", seed=0)
