"""Run directories and ``--resume`` pointers: clear errors, nothing outside the work dir."""

import pathlib
import time

import pytest
import torch
from engine_toy import only_run_dir, toy_config, write_config

from core.engine import workdir
from core.run import main


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_last_checkpoint_pointing_outside_the_run_is_refused(tmp_path, capsys):
    config = write_config(tmp_path / "toy.toml", toy_config(train={"max_epochs": 1}))
    runs = tmp_path / "runs"
    assert main([str(config), "--work-dir", str(runs)]) == 0
    run_dir = only_run_dir(runs)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "epoch_1.pth").write_bytes((run_dir / "epoch_1.pth").read_bytes())
    stray = outside / ".tmp-keep-me"
    stray.write_text("not ours")
    (run_dir / "last_checkpoint").write_text("../../outside/epoch_1.pth")
    assert main([str(config), "--work-dir", str(runs), "--resume"]) == 2
    error = _one_line_error(capsys)
    assert f"{run_dir / 'last_checkpoint'}" in error
    assert "'../../outside/epoch_1.pth' is not a file of its run directory" in error
    assert stray.exists()


@pytest.mark.parametrize(("override", "message"), [
    ({"model": {"type": "NoSuchDetector"}}, "NoSuchDetector"),  # fails building the parts
    ({"optim": {"type": "SGD", "lr": "fast"}}, "optim.lr"),  # fails once the log exists
])
def test_failed_run_removes_the_run_directory_it_left_empty(tmp_path, capsys, override,
                                                            message):
    config = write_config(tmp_path / "toy.toml", toy_config(**override))
    runs = tmp_path / "runs"
    assert main([str(config), "--work-dir", str(runs)]) == 2
    assert message in _one_line_error(capsys)
    assert not runs.exists() or list(runs.iterdir()) == []  # an unknown type fails before


def test_failed_run_keeps_a_run_directory_with_results(tmp_path, capsys):
    cfg = toy_config(model={"type": "ToyDetector", "nan_at_call": 6})
    config = write_config(tmp_path / "toy.toml", cfg)
    assert main([str(config), "--work-dir", str(tmp_path / "runs")]) == 1
    assert (only_run_dir(tmp_path / "runs") / "epoch_1.pth").is_file()


def test_work_dir_below_a_file_is_a_clear_error(tmp_path, capsys):
    config = write_config(tmp_path / "toy.toml", toy_config())
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert main([str(config), "--work-dir", str(blocker / "runs")]) == 2
    error = _one_line_error(capsys)
    assert f"cannot create the run directory under {blocker / 'runs'}" in error


def test_unwritable_work_dir_is_a_clear_error(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path / "toy.toml", toy_config())

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    # running as root ignores file modes, so the refusal is simulated at mkdir
    monkeypatch.setattr(pathlib.Path, "mkdir", refuse)
    assert main([str(config), "--work-dir", str(tmp_path / "ro")]) == 2
    error = _one_line_error(capsys)
    assert "cannot create the run directory under" in error and "Permission denied" in error


def test_runs_started_in_the_same_second_get_distinct_directories(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda fmt: "20260101_120000")
    (tmp_path / "20260101_120000").mkdir()
    # another process creates the directory between a check and the mkdir: no check is made
    monkeypatch.setattr(pathlib.Path, "exists", lambda self: False)
    assert workdir.new_run_dir(tmp_path).name == "20260101_120000_1"
    assert workdir.new_run_dir(tmp_path).name == "20260101_120000_2"


def test_resume_without_a_resumable_checkpoint_names_the_files_it_saw(tmp_path, capsys):
    run_dir = tmp_path / "runs" / "20260101_120000"
    run_dir.mkdir(parents=True)
    torch.save({"state_dict": {}}, run_dir / "best_toy_iou_epoch_20.pth")
    config = write_config(tmp_path / "toy.toml", toy_config())
    assert main([str(config), "--work-dir", str(tmp_path / "runs"), "--resume"]) == 2
    error = _one_line_error(capsys)
    assert "no checkpoint found" in error
    assert "20260101_120000/best_toy_iou_epoch_20.pth" in error
    assert "--resume PATH" in error


@pytest.mark.parametrize("value", ["fast", "true"])
def test_learning_rate_of_the_wrong_type_is_a_config_error(tmp_path, capsys, value):
    config = write_config(tmp_path / "toy.toml", toy_config())
    assert main([str(config), "--work-dir", str(tmp_path / "runs"), "--set",
                 f"optim.lr={value}"]) == 2
    assert "optim.lr: expected a number" in _one_line_error(capsys)
