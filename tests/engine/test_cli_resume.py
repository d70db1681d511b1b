"""Exact resume through the CLI, also after SIGKILL mid-epoch and mid-checkpoint-write."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from engine_toy import CLI, cli_env, load_weights, only_run_dir, run_cli, toy_config, write_config

from core.engine.checkpoint import load_checkpoint

CHECKPOINTS = {"checkpoint": {"iter_interval": 1, "max_keep": 0}, "logger": {"interval": 2}}


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"weights differ: {different}"


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """A 2-epoch run without interruption: its final weights are the reference."""
    root = tmp_path_factory.mktemp("straight")
    config = write_config(root / "toy.toml", toy_config(default_hooks=CHECKPOINTS))
    result = run_cli(str(config), "--work-dir", str(root / "runs"))
    assert result.returncode == 0, result.stderr
    return load_weights(only_run_dir(root / "runs") / "epoch_2.pth")


def _last_checkpoint(runs):
    pointers = list(runs.glob("*/last_checkpoint")) if runs.exists() else []
    return pointers[0].read_text() if pointers else None


def _wait_for(predicate, process, timeout=90.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _sigkill_when(predicate, process):
    """SIGKILL ``process`` as soon as ``predicate()`` holds; never leave it running."""
    try:
        _wait_for(predicate, process)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()


def test_one_epoch_then_resume_equals_two_epochs(tmp_path, straight):
    config = write_config(tmp_path / "toy.toml", toy_config(default_hooks=CHECKPOINTS))
    runs = tmp_path / "runs"
    first = run_cli(str(config), "--work-dir", str(runs), "--set", "train.max_epochs=1")
    assert first.returncode == 0, first.stderr
    run_dir = only_run_dir(runs)
    assert (run_dir / "last_checkpoint").read_text() == "epoch_1.pth"
    second = run_cli(str(config), "--work-dir", str(runs), "--resume", "--set",
                     "train.max_epochs=2")
    assert second.returncode == 0, second.stderr
    assert only_run_dir(runs) == run_dir  # continued in the same run directory
    assert "resumed from" in (run_dir / "train.log").read_text()
    _assert_same_weights(load_weights(run_dir / "epoch_2.pth"), straight)


def test_sigkill_mid_epoch_then_resume_is_exact(tmp_path, straight):
    config = write_config(tmp_path / "toy.toml", toy_config(default_hooks=CHECKPOINTS))
    runs = tmp_path / "runs"
    process = subprocess.Popen(
        [sys.executable, str(CLI), str(config), "--work-dir", str(runs),
         "--set-new", "--set", "model.delay=0.5"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=cli_env())
    _sigkill_when(lambda: _last_checkpoint(runs) == "iter_6.pth", process)
    run_dir = only_run_dir(runs)
    assert not (run_dir / "epoch_2.pth").exists()  # killed in the middle of epoch 2
    resumed_from = (run_dir / "last_checkpoint").read_text()
    assert resumed_from in ("iter_6.pth", "iter_7.pth")
    meta = load_checkpoint(run_dir / resumed_from)["meta"]
    assert meta["epoch"] == 1 and meta["iter_in_epoch"] in (2, 3)
    result = run_cli(str(config), "--work-dir", str(runs), "--resume")
    assert result.returncode == 0, result.stderr
    _assert_same_weights(load_weights(run_dir / "epoch_2.pth"), straight)


def test_kill_during_checkpoint_write_keeps_previous_checkpoint(tmp_path, straight):
    config = write_config(tmp_path / "toy.toml", toy_config())
    runs, marker = tmp_path / "runs", tmp_path / "writing"
    env = {**cli_env(), "TOY_SLOW_SAVE_FROM": "2", "TOY_SLOW_SAVE_MARKER": str(marker)}
    process = subprocess.Popen([sys.executable, str(CLI), str(config), "--work-dir", str(runs)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _sigkill_when(marker.exists, process)  # the 2nd checkpoint is half written
    run_dir = only_run_dir(runs)
    assert not (run_dir / "epoch_2.pth").exists()
    assert len(list(run_dir.glob(".tmp-epoch_2.pth-*"))) == 1  # the interrupted write
    assert (run_dir / "last_checkpoint").read_text() == "epoch_1.pth"
    assert load_checkpoint(run_dir / "epoch_1.pth")["meta"]["epoch"] == 1
    result = run_cli(str(config), "--work-dir", str(runs), "--resume")
    assert result.returncode == 0, result.stderr
    assert not list(run_dir.glob(".tmp-*"))  # the partial write was cleaned up
    # CHECKPOINTS only adds saving; the training itself is the same as the reference run
    _assert_same_weights(load_weights(run_dir / "epoch_2.pth"), straight)
