"""``--print-config`` builds what a run builds without its data (settings, model, hooks,
metrics, optimizer, lr schedulers), so a value that training refuses is refused when printing,
with the same one-line message and exit code 2, and nothing on stdout."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from core.cli import main as plugdet_main
from core.engine.full_config import load_full_config
from core.errors import ConfigError
from core.plugins import get_registries
from core.run import main as run_main

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "plugins/retinanet/configs/retinanet_tinynet_fpn_demo_shapes.toml"
RACCOON_R18 = ROOT / "plugins/retinanet/configs/retinanet_r18_fpn_1x_raccoon.toml"
#: a run that fails before its first iteration, on a few generated images
SMALL_RUN = ["--set", "train_dataloader.dataset.num_images=8",
             "--set", "val_dataloader.dataset.num_images=4",
             "--set", "test_dataloader.dataset.num_images=4",
             "--set", "train.max_epochs=1"]

#: case -> (--set overrides, start of the message after "error: ")
BAD_VALUES = {
    "sampler pos_fraction": (
        ["model.head.sampler.type=RandomSampler", "model.head.sampler.pos_fraction=1.5"],
        "model.head.sampler.pos_fraction: expected a value in [0, 1], got 1.5"),
    "anchor ratio <= 0": (
        ["model.head.prior_generator.ratios=[1.0, 0.0]"],
        "model.head.prior_generator.ratios: expected positive values, got [1.0, 0.0]"),
    "coder wh_ratio_clip": (
        ["model.head.bbox_coder.wh_ratio_clip=1.5"],
        "model.head.bbox_coder.wh_ratio_clip: expected a value in (0, 1], got 1.5"),
    "unknown optimizer": (
        ["optim.type=Adamm"], "optim.type: unknown optimizer 'Adamm'; torch.optim has ["),
    "scheduler window": (
        ["param_schedulers.1.begin=30"],
        "param_schedulers[1]: expected integers 0 <= begin < end, got begin=30, end=20"),
    "hook option": (
        ["default_hooks.checkpoint.max_keep=-1"],
        "default_hooks.checkpoint.max_keep: expected >= 0, got -1"),
}


def sets(overrides: list[str]) -> list[str]:
    return [arg for override in overrides for arg in ("--set", override)]


@pytest.fixture(autouse=True)
def shapes_cache(tmp_path_factory, monkeypatch):
    """The generated shapes of the train runs, written once for the module."""
    monkeypatch.setenv("PLUGDET_CACHE", str(tmp_path_factory.getbasetemp() / "shapes_cache"))


def error_line(capsys, printing: bool = True) -> str:
    """The one line on stderr; stdout must be empty when printing the config (a run logs
    there what it built before failing)."""
    captured = capsys.readouterr()
    assert captured.out == "" or not printing
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_print_config_refuses_what_train_refuses_with_the_same_line(case, tmp_path, capsys):
    overrides, message = BAD_VALUES[case]
    assert run_main([str(DEMO), "--print-config", *sets(overrides)]) == 2
    printed = error_line(capsys)
    assert printed.startswith(f"error: {message}")
    assert run_main([str(DEMO), "--work-dir", str(tmp_path / "w"), *sets(overrides),
                     *SMALL_RUN]) == 2
    assert error_line(capsys, printing=False) == printed
    assert not list((tmp_path / "w").rglob("*.pth"))


def test_plugdet_train_print_config_refuses_the_same_way(capsys):
    overrides, message = BAD_VALUES["coder wh_ratio_clip"]
    assert plugdet_main(["train", str(DEMO), "--print-config", *sets(overrides)]) == 2
    assert error_line(capsys) == f"error: {message}"
    assert plugdet_main(["train", str(DEMO), "--print-config"]) == 0
    assert "wh_ratio_clip = 0.016" in capsys.readouterr().out


def test_print_config_of_a_test_run_checks_what_a_test_run_builds(tmp_path, capsys):
    """``--test CKPT --print-config``: the model is checked, the optimizer is not built."""
    ckpt = str(tmp_path / "model.pth")  # not read
    assert run_main([str(DEMO), "--test", ckpt, "--print-config",
                     "--set", "optim.type=Adamm"]) == 0
    assert 'type = "Adamm"' in capsys.readouterr().out
    overrides, message = BAD_VALUES["coder wh_ratio_clip"]
    assert run_main([str(DEMO), "--test", ckpt, "--print-config", *sets(overrides)]) == 2
    assert error_line(capsys) == f"error: {message}"


def test_pretrained_weights_are_not_read_when_printing(monkeypatch, capsys):
    """An ``init_cfg`` of torchvision weights is checked, not downloaded."""

    def no_download(*args, **kwargs):
        raise AssertionError("--print-config must not download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    assert run_main([str(RACCOON_R18), "--print-config"]) == 0
    assert 'checkpoint = "torchvision://resnet18"' in capsys.readouterr().out
    unknown = "model.backbone.init_cfg.checkpoint=torchvision://resnet_nope"
    assert run_main([str(RACCOON_R18), "--print-config", "--set", unknown]) == 2
    printed = error_line(capsys)
    assert printed == ("error: model.backbone.init_cfg.checkpoint: unknown torchvision model "
                       "'resnet_nope'")
    cfg = load_full_config(str(RACCOON_R18), [unknown])
    with pytest.raises(ConfigError) as info:  # what a run's model build raises
        get_registries().build("detector", cfg["model"], path="model")
    assert printed == f"error: {info.value}"


def test_a_count_left_to_the_data_does_not_block_the_check(tmp_path, capsys):
    """The datasets' data gives the class count: the printed config leaves it out, and the
    model is still checked (built with one class)."""
    coco = 'type = "CocoDataset"\nann_file = "absent/annotations.json"\n_delete_ = true\n'
    config = tmp_path / "coco.toml"
    config.write_text(f'_base_ = ["{DEMO.as_posix()}"]\n' + "".join(
        f"[{key}.dataset]\n{coco}" for key in ("train_dataloader", "val_dataloader",
                                               "test_dataloader")))
    assert run_main([str(config), "--print-config"]) == 0
    out = capsys.readouterr().out
    assert 'ann_file = "absent/annotations.json"' in out and "num_classes" not in out
    overrides, message = BAD_VALUES["coder wh_ratio_clip"]
    assert run_main([str(config), "--print-config", *sets(overrides)]) == 2
    assert error_line(capsys) == f"error: {message}"


def test_printing_leaves_the_random_generators_alone(capsys):
    state = torch.get_rng_state()
    assert run_main([str(DEMO), "--print-config"]) == 0
    assert torch.equal(torch.get_rng_state(), state)


def shipped_configs() -> list[Path]:
    paths = [*ROOT.glob("core/configs/**/*.toml"),
             *ROOT.glob("plugins/*/plugdet_*/configs/**/*.toml")]
    return sorted(p for p in paths if "_base_" not in p.relative_to(ROOT).parts)


def test_every_shipped_config_prints(capsys):
    configs = shipped_configs()
    assert len(configs) > 20
    failures = {}
    for path in configs:
        code = run_main([str(path), "--print-config"])
        captured = capsys.readouterr()
        if code != 0 or not captured.out.strip():
            failures[str(path.relative_to(ROOT))] = captured.err.strip()
    assert not failures, textwrap.indent("\n".join(f"{k}: {v}" for k, v in failures.items()), "  ")
