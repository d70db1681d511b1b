"""Another VOC set of the raccoon layout takes two overrides: the data root and the classes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from core.config import load_config

ROOT = Path(__file__).resolve().parents[2]
RACCOON = ROOT / "plugins/retinanet/configs/retinanet_tinynet_fpn_scratch_raccoon.toml"
CLASSES = ["cat", "dog"]
SIZE = 96


def make_voc_set(root: Path, train: int = 8, val: int = 4) -> None:
    """``annotations/*.xml``, ``images/*.jpg``, ``train.txt``, ``val.txt``: one cat (red) or
    dog (blue) square per image."""
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    names = [f"img{i}" for i in range(train + val)]
    for index, name in enumerate(names):
        pixels = np.full((SIZE, SIZE, 3), 200, np.uint8)
        x1, y1 = (int(v) for v in rng.integers(0, SIZE // 2, 2))
        side = int(rng.integers(24, SIZE // 2))
        label = index % 2
        pixels[y1:y1 + side, x1:x1 + side] = (220, 30, 30) if label == 0 else (30, 30, 220)
        Image.fromarray(pixels).save(root / "images" / f"{name}.jpg")
        (root / "annotations" / f"{name}.xml").write_text(
            f"<annotation><filename>{name}.jpg</filename><size><width>{SIZE}</width>"
            f"<height>{SIZE}</height><depth>3</depth></size><object><name>{CLASSES[label]}"
            f"</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
            f"<xmax>{x1 + side}</xmax><ymax>{y1 + side}</ymax></bndbox></object></annotation>")
    (root / "train.txt").write_text("\n".join(names[:train]) + "\n")
    (root / "val.txt").write_text("\n".join(names[train:]) + "\n")


def two_overrides(root: Path) -> list[str]:
    return ["--set", f"data.root={root}", "--set", f"data.classes={json.dumps(CLASSES)}"]


def test_two_overrides_reach_every_dataset_and_the_head(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "core.run", str(RACCOON), *two_overrides(tmp_path / "voc"),
         "--print-config"], capture_output=True, text=True, check=True, cwd=tmp_path)
    printed = tmp_path / "printed.toml"
    printed.write_text(result.stdout)
    cfg = load_config(printed)
    for key in ("train", "val", "test"):
        dataset = cfg[f"{key}_dataloader"]["dataset"]
        assert dataset["data_root"] == str(tmp_path / "voc")
        assert dataset["classes"] == CLASSES
    assert cfg["model"]["head"]["num_classes"] == 2
    assert "${" not in result.stdout


def test_raccoon_config_trains_one_epoch_on_another_voc_set(tmp_path):
    make_voc_set(tmp_path / "voc")
    short = ["--set", "train.max_epochs=1", "--set", "train.val_interval=1",
             "--set", "param_schedulers.1.end=1"]
    result = subprocess.run(
        [sys.executable, "-m", "core.run", str(RACCOON), *two_overrides(tmp_path / "voc"),
         *short, "--work-dir", str(tmp_path / "work")],
        capture_output=True, text=True, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / "work").iterdir()
    assert (run / "epoch_1.pth").is_file()
    saved = load_config(run / "config.toml")
    assert saved["train_dataloader"]["dataset"]["classes"] == CLASSES
    assert saved["model"]["head"]["num_classes"] == 2
    summary = json.loads((run / "val_plots" / "summary.json").read_text())
    assert summary["classes"] == CLASSES
    assert "train/loss_cls" in (run / "vis_data" / "scalars.json").read_text()
