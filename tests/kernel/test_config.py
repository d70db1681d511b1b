"""TOML configs: inheritance, deletion, overrides, errors and a faithful dump."""

from __future__ import annotations

import textwrap

import pytest

from core.config import apply_override, dump_config, load_config
from core.errors import ConfigError


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def tree(tmp_path):
    write(
        tmp_path / "_base_/model.toml",
        """
        [model]
        type = "RetinaNet"
        [model.backbone]
        type = "ResNet"
        depth = 50
        frozen_stages = 1
        """,
    )
    write(
        tmp_path / "_base_/schedule.toml",
        """
        [optim]
        type = "SGD"
        lr = 0.01
        [train]
        max_epochs = 12
        """,
    )
    return tmp_path


def test_bases_merge_depth_first_and_later_wins(tree):
    cfg_path = write(
        tree / "configs/exp.toml",
        """
        _base_ = ["../_base_/model.toml", "../_base_/schedule.toml"]
        [model.backbone]
        depth = 18
        [train]
        max_epochs = 3
        """,
    )
    cfg = load_config(cfg_path)
    assert cfg["model"]["backbone"] == {"type": "ResNet", "depth": 18, "frozen_stages": 1}
    assert cfg["train"]["max_epochs"] == 3
    assert cfg["optim"]["lr"] == 0.01
    assert "_base_" not in cfg


def test_later_base_overrides_earlier_and_chains_nest(tree):
    write(tree / "mid.toml", '_base_ = "_base_/schedule.toml"\n[optim]\nlr = 0.02\n')
    cfg_path = write(tree / "top.toml", '_base_ = ["_base_/schedule.toml", "mid.toml"]\n')
    assert load_config(cfg_path)["optim"] == {"type": "SGD", "lr": 0.02}


def test_delete_replaces_the_inherited_table(tree):
    cfg_path = write(
        tree / "exp.toml",
        """
        _base_ = ["_base_/model.toml"]
        [model.backbone]
        _delete_ = true
        type = "MobileNet"
        """,
    )
    assert load_config(cfg_path)["model"]["backbone"] == {"type": "MobileNet"}


def test_cycles_name_the_chain(tmp_path):
    write(tmp_path / "a.toml", '_base_ = ["b.toml"]\n')
    write(tmp_path / "b.toml", '_base_ = ["a.toml"]\n')
    with pytest.raises(ConfigError, match=r"cycle: .*a\.toml -> .*b\.toml -> .*a\.toml"):
        load_config(tmp_path / "a.toml")


def test_missing_base_names_file_and_chain(tmp_path):
    write(tmp_path / "a.toml", '_base_ = ["b.toml"]\n')
    write(tmp_path / "b.toml", '_base_ = ["nowhere.toml"]\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "a.toml")
    message = str(info.value)
    assert "b.toml: _base_ entry 'nowhere.toml' not found" in message
    assert "chain:" in message and "a.toml ->" in message


def test_invalid_toml_names_the_file_and_line(tmp_path):
    write(tmp_path / "bad.toml", "[model]\ntype = RetinaNet\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: invalid TOML: .*line 2"):
        load_config(tmp_path / "bad.toml")


def test_package_resource_bases(tmp_path, monkeypatch):
    package = tmp_path / "cfgpkg"
    write(package / "__init__.py", "")
    write(package / "configs/base.toml", "[optim]\nlr = 0.5\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg_path = write(tmp_path / "exp.toml", '_base_ = ["cfgpkg::configs/base.toml"]\n')
    assert load_config(cfg_path)["optim"]["lr"] == 0.5
    write(tmp_path / "bad.toml", '_base_ = ["nopkg_xyz::configs/base.toml"]\n')
    with pytest.raises(ConfigError, match="package 'nopkg_xyz' is not installed"):
        load_config(tmp_path / "bad.toml")


@pytest.mark.parametrize(
    ("override", "key", "value"),
    [
        ("optim.lr=0.02", ("optim", "lr"), 0.02),
        ("model.backbone.depth=18", ("model", "backbone", "depth"), 18),
        ("model.backbone.type=ResNeXt", ("model", "backbone", "type"), "ResNeXt"),
        ('model.backbone.type="Res Net"', ("model", "backbone", "type"), "Res Net"),
        ("train.max_epochs=[1, 2]", ("train", "max_epochs"), [1, 2]),
        ("optim={type = 'Adam', lr = 1e-3}", ("optim",), {"type": "Adam", "lr": 0.001}),
        ("model.extras.0.on=true", ("model", "extras", 0, "on"), True),
    ],
)
def test_overrides_are_toml_literals(override, key, value):
    cfg = {
        "optim": {"lr": 0.01},
        "model": {"backbone": {"depth": 50, "type": "ResNet"}, "extras": [{"on": False}]},
        "train": {"max_epochs": 12},
    }
    apply_override(cfg, override)
    node = cfg
    for part in key:
        node = node[part]
    assert node == value


def test_unknown_override_keys_are_rejected_unless_allowed():
    cfg = {"optim": {"lr": 0.01}}
    with pytest.raises(ConfigError, match=r"optim\.lrr: unknown key \(did you mean 'lr'\?\)"):
        apply_override(cfg, "optim.lrr=0.1")
    apply_override(cfg, "optim.momentum=0.9", allow_new=True)
    apply_override(cfg, "ema.decay=0.99", allow_new=True)
    assert cfg == {"optim": {"lr": 0.01, "momentum": 0.9}, "ema": {"decay": 0.99}}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_override(cfg, "optim.lr")
    with pytest.raises(ConfigError, match="cannot parse"):
        apply_override(cfg, "optim.lr=[1,")


def test_dump_reloads_to_an_equal_config(tree, tmp_path):
    cfg_path = write(
        tree / "exp.toml",
        """
        _base_ = ["_base_/model.toml", "_base_/schedule.toml"]
        pipeline = [{type = "Resize", scale = [640, 480]}, {type = "Flip", prob = 0.5}]
        [model.backbone]
        depth = 18
        """,
    )
    cfg = load_config(cfg_path, ["optim.lr=0.125"])
    dumped = tmp_path / "dumped.toml"
    dumped.write_text(dump_config(cfg))
    assert load_config(dumped) == cfg
