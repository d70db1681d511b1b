"""The head's class count follows the dataset's classes, read without building the dataset."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.config import load_config
from core.engine.class_count import dataset_classes, resolve_num_classes
from core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "plugins/retinanet/configs"
DEMO = CONFIGS / "retinanet_tinynet_fpn_demo_shapes.toml"
SHAPES = ("circle", "square", "triangle", "star", "cross")


def test_classes_of_a_table_of_a_class_attribute_and_of_a_parameter_default():
    assert dataset_classes({"type": "ShapesDataset"}, "d") == SHAPES
    assert dataset_classes({"type": "VocDataset", "classes": ["a", "b"]}, "d") == ("a", "b")
    assert len(dataset_classes({"type": "VocDataset"}, "d")) == 20  # the VOC default
    assert dataset_classes({"type": "CocoDataset", "ann_file": "x.json"}, "d") is None
    with pytest.raises(ConfigError, match=r"d\.classes: expected a list of class names"):
        dataset_classes({"type": "VocDataset", "classes": "raccoon"}, "d")


def test_unset_count_is_taken_from_the_dataset_and_shown_in_the_config():
    cfg = load_config(DEMO)
    assert "num_classes" not in cfg["model"]["head"]
    resolved = resolve_num_classes(cfg)
    assert resolved["model"]["head"]["num_classes"] == 5
    assert "num_classes" not in cfg["model"]["head"]  # a copy
    raccoon = load_config(CONFIGS / "retinanet_r18_fpn_1x_raccoon.toml",
                          ['data.classes=["a", "b", "c"]'])
    assert resolve_num_classes(raccoon)["model"]["head"]["num_classes"] == 3


def test_a_different_count_names_both_keys_and_numbers():
    cfg = load_config(DEMO, ["model.head.num_classes=3"], allow_new=True)
    with pytest.raises(ConfigError) as info:
        resolve_num_classes(cfg)
    assert str(info.value).startswith(
        "model.head.num_classes = 3 but train_dataloader.dataset has 5 classes (circle, ")


def test_unknown_classes_and_no_count_is_an_error():
    cfg = {"model": {"head": {"type": "RetinaHead"}},
           "train_dataloader": {"dataset": {"type": "CocoDataset", "ann_file": "a.json"}}}
    with pytest.raises(ConfigError, match=r"model\.head\.num_classes: not set"):
        resolve_num_classes(cfg)
    cfg["model"]["head"]["num_classes"] = 80
    assert resolve_num_classes(cfg) is cfg


def test_cli_stops_with_exit_2_naming_both_keys(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "core.run", str(DEMO), "--set-new",
         "--set", "model.head.num_classes=3", "--work-dir", str(tmp_path / "w")],
        capture_output=True, text=True, check=False, cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: model.head.num_classes = 3 but train_dataloader.dataset "
                           "has 5 classes")
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").rglob("*.pth"))


def test_print_config_shows_the_resolved_count(tmp_path):
    result = subprocess.run([sys.executable, "-m", "core.run", str(DEMO), "--print-config"],
                            capture_output=True, text=True, check=True, cwd=tmp_path)
    assert "num_classes = 5" in result.stdout
