"""``plugdet`` with subcommands: the console script, each command's help, the delegation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import COMMANDS, main

from .conftest import DEMO, ROOT, TINY_RUN

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

OPTIONS = {
    "train": ["--resume", "--set", "--work-dir", "--print-config"],
    "test": ["CKPT", "--out", "--tta"],
    "predict": ["SOURCE", "--out", "--score-thr", "--tta", "--device", "--coco", "--batch-size"],
    "export": ["--format", "--dynamic", "--size", "--image"],
    "plugins": ["--json", "--verbose"],
    "browse": ["--out", "--split", "--n"],
    "weights": ["list", "inspect", "convert", "--config", "--out"],
    "analyze": ["RUN_DIR", "--checkpoint", "--split", "--out", "--num-images", "--score-thr",
                "--device"],
    "compare": ["RUN_DIR", "--out"],
}


def plugdet(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core.cli", *args], capture_output=True,
                          text=True, check=False, cwd=cwd, env=env)


def test_console_script_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["plugdet"] == "core.cli:main"
    assert {"onnx", "onnxruntime"} <= {r.split(">")[0] for r in
                                       project["optional-dependencies"]["export"]}


def test_top_level_help_lists_every_command(tmp_path, capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in OPTIONS:
        assert f"  {command} " in out
    assert set(COMMANDS) == set(OPTIONS)
    assert main([]) == 2
    with pytest.raises(SystemExit) as info:
        main(["bogus"])
    assert info.value.code == 2


@pytest.mark.parametrize("command", list(OPTIONS))
def test_each_command_help_lists_its_options_and_examples(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: plugdet {command} ")
    assert "examples:" in out
    for option in OPTIONS[command]:
        assert option in out


def test_train_and_run_print_the_same_config(tmp_path):
    via_plugdet = plugdet("train", str(DEMO), "--print-config", cwd=tmp_path)
    via_run = subprocess.run([sys.executable, "-m", "core.run", str(DEMO), "--print-config"],
                             capture_output=True, text=True, check=True, cwd=tmp_path)
    assert via_plugdet.returncode == 0 and via_plugdet.stdout == via_run.stdout


def test_test_command_evaluates_a_checkpoint(tiny_demo, tmp_path):
    out = tmp_path / "results.json"
    result = plugdet("test", str(DEMO), str(tiny_demo.checkpoint), *TINY_RUN, "--out",
                     str(out), "--work-dir", str(tmp_path / "w"), cwd=tmp_path,
                     env=tiny_demo.env)
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(out.read_text())
    assert payload["checkpoint"] == str(tiny_demo.checkpoint)
    assert "coco/bbox_mAP" in payload["metrics"] and len(payload["predictions"]) == 4


def test_plugins_command_lists_components_as_json(tmp_path):
    result = plugdet("plugins", "--json", cwd=tmp_path)
    assert result.returncode == 0
    listing = json.loads(result.stdout)
    assert any("RetinaNet" in json.dumps(p) for p in listing["plugins"])


def test_user_errors_exit_2_with_one_line(tmp_path):
    result = plugdet("export", str(DEMO), str(tmp_path / "missing.pth"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: checkpoint file not found: {tmp_path / 'missing.pth'}"]
