"""The command line's config handling and exit codes."""

from __future__ import annotations

import subprocess
import sys

from core.config import load_config
from core.engine.full_config import complete_config
from core.plugins import get_registries

CONFIG = """
seed = 3
[model]
type = "RetinaNet"
[model.backbone]
type = "ResNet"
depth = 50
[model.neck]
type = "FPN"
in_channels = [256, 512, 1024, 2048]
[model.head]
type = "RetinaHead"
num_classes = 4
[optim]
type = "SGD"
lr = 0.01
[train_dataloader.dataset]
type = "VocDataset"
classes = ["a", "b", "c", "d"]
"""


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "core.run", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


def test_print_config_output_reloads_to_the_merged_config(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(CONFIG)
    result = run_cli(
        path, "--print-config", "--set", "optim.lr=0.02", "--set", "model.backbone.depth=18"
    )
    assert result.returncode == 0, result.stderr
    printed = tmp_path / "printed.toml"
    printed.write_text(result.stdout)
    merged = load_config(path, ["optim.lr=0.02", "model.backbone.depth=18"])
    expected = complete_config(merged, get_registries())  # every default filled in
    assert load_config(printed) == expected
    assert expected["model"]["backbone"]["depth"] == 18
    assert expected["model"]["backbone"]["frozen_stages"] == -1  # a ResNet default


def test_config_errors_exit_2_with_one_line(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(CONFIG)
    result = run_cli(path, "--print-config", "--set", "optim.lrr=0.1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: override optim.lrr: unknown key (did you mean 'lr'?); use --set-new to add a key"
    ]
    added = run_cli(path, "--print-config", "--set-new", "--set", "optim.lrr=0.1")
    assert added.returncode == 2  # added, then refused by the optimizer as a run would
    assert added.stdout == ""
    assert added.stderr.startswith("error: optim (SGD): unknown keys ['lrr']; allowed: [")


def test_missing_config_exits_2_and_debug_shows_the_traceback(tmp_path):
    missing = tmp_path / "nope.toml"
    result = run_cli(missing, "--print-config")
    assert result.returncode == 2
    assert "nope.toml: cannot read config" in result.stderr
    assert "Traceback" not in result.stderr
    debug = run_cli(missing, "--print-config", "--debug")
    assert "Traceback" in debug.stderr


def test_usage_errors_exit_2():
    assert run_cli().returncode == 2
