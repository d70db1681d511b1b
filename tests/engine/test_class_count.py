"""The heads' class counts follow the datasets' classes: read from the config without building
the datasets, and from the built datasets when only their data knows them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.config import load_config
from core.engine.class_count import (
    count_from_datasets,
    count_keys,
    dataset_classes,
    resolve_num_classes,
)
from core.engine.full_config import load_full_config
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


COCO_ONLY = {"model": {"head": {"type": "RetinaHead"}},
             "train_dataloader": {"dataset": {"type": "CocoDataset", "ann_file": "a.json"}},
             "val_dataloader": {"dataset": {"type": "CocoDataset", "ann_file": "b.json"}}}


def test_a_count_only_the_data_knows_is_an_error_unless_the_data_is_read():
    with pytest.raises(ConfigError) as info:
        resolve_num_classes(COCO_ONLY)
    assert str(info.value) == (
        "model.head.num_classes: not set, and train_dataloader.dataset takes its classes from "
        "its data (CocoDataset), which this command does not read; --set "
        "model.head.num_classes=N gives the count")
    assert resolve_num_classes(COCO_ONLY, counts_from_data=True) is COCO_ONLY
    given = {**COCO_ONLY, "model": {"head": {"type": "RetinaHead", "num_classes": 80}}}
    assert resolve_num_classes(given) is given


def test_the_built_datasets_give_a_count_left_out_and_check_a_given_one():
    names = {"train_dataloader.dataset": ("cat", "dog"), "val_dataloader.dataset": ("cat", "dog")}
    resolved = count_from_datasets(COCO_ONLY, names)
    assert resolved["model"]["head"]["num_classes"] == 2
    assert "num_classes" not in COCO_ONLY["model"]["head"]  # a copy
    given = {**COCO_ONLY, "model": {"head": {"type": "RetinaHead", "num_classes": 80}}}
    with pytest.raises(ConfigError) as info:
        count_from_datasets(given, names)
    assert str(info.value) == (
        "model.head.num_classes = 80 but train_dataloader.dataset has 2 classes (cat, dog; "
        "from its data); --set model.head.num_classes=2 matches it, or leave "
        "model.head.num_classes out to take the count from the dataset")
    assert count_from_datasets(given, {"train_dataloader.dataset": ()}) is given  # no names


def test_datasets_with_different_classes_are_named_when_the_count_follows_them():
    names = {"train_dataloader.dataset": ("cat", "dog"), "val_dataloader.dataset": ("cat",)}
    with pytest.raises(ConfigError) as info:
        count_from_datasets(COCO_ONLY, names)
    assert str(info.value).startswith(
        "val_dataloader.dataset has 1 class (cat; from its data) but "
        "train_dataloader.dataset has 2: model.head.num_classes, taken from "
        "train_dataloader.dataset, cannot match both")


def test_a_long_class_list_is_cut_short_in_the_message():
    names = {"train_dataloader.dataset": tuple(f"c{i}" for i in range(80))}
    given = {**COCO_ONLY, "model": {"head": {"type": "RetinaHead", "num_classes": 3}}}
    with pytest.raises(ConfigError, match=r"has 80 classes \(c0, c1, c2, c3, c4, c5, c6, c7, "
                                          r"\.\.\.; from its data\)"):
        count_from_datasets(given, names)


def test_count_keys_are_the_heads_that_take_a_count():
    assert count_keys(load_config(DEMO)) == ["model.head"]
    faster = ROOT / "plugins/faster_rcnn/configs/faster_rcnn_tinynet_fpn_demo_shapes.toml"
    assert count_keys(load_config(faster)) == ["model.roi_head"]  # not the class-free RPN


def test_the_count_is_checked_once_after_every_override():
    raccoon = str(CONFIGS / "retinanet_r18_fpn_1x_raccoon.toml")
    three = 'data.classes=["a", "b", "c"]'
    for overrides in ([three, "model.head.num_classes=3"], ["model.head.num_classes=3", three]):
        assert load_full_config(raccoon, overrides)["model"]["head"]["num_classes"] == 3
    with pytest.raises(ConfigError, match=r"^model\.head\.num_classes = 3 but "
                                          r"train_dataloader\.dataset has 1 class \(raccoon\)"):
        load_full_config(raccoon, ["model.head.num_classes=3"])


def test_a_count_left_to_the_data_stays_out_of_the_full_form():
    """Not the head's default of 80: the run takes the count from the built datasets."""
    from core.engine.full_config import full_form
    from core.plugins import get_registries

    cfg = {**COCO_ONLY, "model": {"type": "RetinaNet", "head": {"type": "RetinaHead"}}}
    full = full_form(cfg, get_registries(), counts_from_data=True)
    assert "num_classes" not in full["model"]["head"]
    assert full["model"]["head"]["feat_channels"] == 256  # the other defaults are filled in


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
