"""A run's files on a full disk, in a read-only place, in use by another run: one clear line,
also in ``train.log``; the last good checkpoint survives."""

import errno
import io
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import torch
from engine_toy import CLI, ToyDataset, ToyMetric, cli_env, only_run_dir, toy_config, write_config
from matplotlib.figure import Figure

from core.data.datasets import shapes
from core.engine import workdir
from core.engine.checkpoint import LAST_CHECKPOINT_FILE, load_checkpoint
from core.engine.log_setup import close_logger, setup_logger
from core.errors import DataError
from core.run import main

CURVES = {"logger": {"interval": 2}, "curves": {"type": "CurvesHook", "min_interval": 0}}
LOCAL_VIS = [{"type": "LocalVisBackend"}]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def _error_lines(log_file):
    return [line for line in log_file.read_text().splitlines() if " - ERROR - " in line]


class _FullDisk(io.RawIOBase):
    """A file whose writes fail with ENOSPC after ``room`` bytes."""

    def __init__(self, fileobj, room: int) -> None:
        self.fileobj, self.room = fileobj, room

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.room -= len(data)
        if self.room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.fileobj.write(data)


def _fill_disk_at_save(monkeypatch, failing_call: int) -> None:
    """The ``failing_call``-th ``torch.save`` runs out of space half-way (torch then raises its
    own RuntimeError about the zip position, the OSError as its context)."""
    real_save, calls = torch.save, []

    def save(obj, fileobj, *args, **kwargs):
        calls.append(1)
        if len(calls) == failing_call:
            fileobj = _FullDisk(fileobj, room=4096)
        return real_save(obj, fileobj, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def test_full_disk_at_a_checkpoint_keeps_the_last_good_one(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path / "toy.toml", toy_config())
    runs = tmp_path / "runs"
    _fill_disk_at_save(monkeypatch, failing_call=2)
    assert main([str(config), "--work-dir", str(runs)]) == 1
    run_dir = only_run_dir(runs)
    message = (f"no space left on device while writing {run_dir / 'epoch_2.pth'}; "
               f"the last good checkpoint is {run_dir / 'epoch_1.pth'}")
    assert _one_line_error(capsys) == f"error: {message}"
    assert _error_lines(run_dir / "train.log")[-1].endswith(f" - ERROR - {message}")
    assert (run_dir / LAST_CHECKPOINT_FILE).read_text() == "epoch_1.pth"
    assert load_checkpoint(run_dir / "epoch_1.pth")["meta"]["epoch"] == 1
    assert sorted(p.name for p in run_dir.glob("*.pth")) == ["epoch_1.pth"]
    assert not list(run_dir.glob(".tmp-*"))


def test_full_disk_before_any_checkpoint_says_there_is_none(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path / "toy.toml", toy_config())
    _fill_disk_at_save(monkeypatch, failing_call=1)
    assert main([str(config), "--work-dir", str(tmp_path / "runs")]) == 1
    run_dir = only_run_dir(tmp_path / "runs")
    assert _one_line_error(capsys) == (
        f"error: no space left on device while writing {run_dir / 'epoch_1.pth'}; "
        "no checkpoint was written yet")


def test_full_disk_at_the_curves_picture_names_it(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path / "toy.toml",
                          toy_config(default_hooks=CURVES, vis_backends=LOCAL_VIS))

    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a failed write: no name

    monkeypatch.setattr(Figure, "savefig", no_space)
    assert main([str(config), "--work-dir", str(tmp_path / "runs")]) == 1
    run_dir = only_run_dir(tmp_path / "runs")
    error = _one_line_error(capsys)
    assert error.startswith(
        f"error: no space left on device while writing {run_dir / 'curves.png'}; ")
    assert _error_lines(run_dir / "train.log")[-1].endswith(error.removeprefix("error: "))


def test_run_directory_made_read_only_during_the_run(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path / "toy.toml", toy_config())
    runs = tmp_path / "runs"
    real_mkstemp, made = tempfile.mkstemp, []

    def mkstemp(*args, **kwargs):  # root ignores file modes: refuse like a read-only folder
        made.append(1)
        if len(made) > 2:  # epoch_1.pth and last_checkpoint were written
            name = os.path.join(kwargs["dir"], kwargs["prefix"] + "x1y2z3")
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    assert main([str(config), "--work-dir", str(runs)]) == 1
    run_dir = only_run_dir(runs)
    message = (f"cannot write {run_dir / 'epoch_2.pth'}: Permission denied; "
               f"the last good checkpoint is {run_dir / 'epoch_1.pth'}")
    assert _one_line_error(capsys) == f"error: {message}"
    assert _error_lines(run_dir / "train.log")[-1].endswith(message)


def test_read_only_cache_names_the_folder(tmp_path, capsys, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv(shapes.CACHE_ENV, str(cache))
    cfg = toy_config()
    cfg["train_dataloader"]["dataset"] = {"type": "ShapesDataset", "num_images": 2,
                                          "image_size": 32, "object_size": [8, 16]}
    config = write_config(tmp_path / "toy.toml", cfg)

    def mkdtemp(*args, **kwargs):  # root ignores file modes: refuse like a read-only folder
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(kwargs["dir"]))

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    assert main([str(config), "--work-dir", str(tmp_path / "runs")]) == 2
    error = _one_line_error(capsys)
    assert error.startswith("error: train_dataloader.dataset: cannot write the generated "
                            f"shapes dataset into {cache / 'shapes'}: Permission denied")
    assert "PLUGDET_CACHE" in error


def test_binary_last_checkpoint_file_names_it(tmp_path, capsys):
    config = write_config(tmp_path / "toy.toml", toy_config(train={"max_epochs": 1}))
    runs = tmp_path / "runs"
    assert main([str(config), "--work-dir", str(runs)]) == 0
    pointer = only_run_dir(runs) / LAST_CHECKPOINT_FILE
    pointer.write_bytes(b"\x80\x04\x95\xff\x00PK\x03\x04")
    capsys.readouterr()
    assert main([str(config), "--work-dir", str(runs), "--resume"]) == 2
    error = _one_line_error(capsys)
    assert error.startswith(f"error: {pointer}: not a text file naming a checkpoint")


def test_failure_after_the_run_directory_exists_is_in_train_log(tmp_path, capsys):
    cfg = toy_config(default_hooks={"checkpoint": {"save_best": "toy/no_such_metric"}})
    config = write_config(tmp_path / "toy.toml", cfg)
    assert main([str(config), "--work-dir", str(tmp_path / "runs")]) == 2
    error = _one_line_error(capsys).removeprefix("error: ")
    assert "toy/no_such_metric" in error
    lines = _error_lines(only_run_dir(tmp_path / "runs") / "train.log")
    assert lines and lines[-1].endswith(f" - ERROR - {error}")


def test_unexpected_failure_writes_its_traceback_to_train_log(tmp_path, monkeypatch):
    config = write_config(tmp_path / "toy.toml", toy_config())

    def broken(self):
        raise ZeroDivisionError("metric broke")

    monkeypatch.setattr(ToyMetric, "evaluate", broken)
    with pytest.raises(ZeroDivisionError):
        main([str(config), "--work-dir", str(tmp_path / "runs")])
    log = (only_run_dir(tmp_path / "runs") / "train.log").read_text()
    assert " - ERROR - ZeroDivisionError: metric broke" in log
    assert "Traceback (most recent call last)" in log


def test_resume_failing_to_build_is_in_the_resumed_runs_log(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path / "toy.toml", toy_config(train={"max_epochs": 1}))
    runs = tmp_path / "runs"
    assert main([str(config), "--work-dir", str(runs)]) == 0
    run_dir = only_run_dir(runs)
    capsys.readouterr()

    def data_gone(self, *args, **kwargs):
        raise DataError("the toy images are gone")

    monkeypatch.setattr(ToyDataset, "__init__", data_gone)
    assert main([str(config), "--work-dir", str(runs), "--resume",
                 "--set", "train.max_epochs=2"]) == 2
    error = _one_line_error(capsys).removeprefix("error: ")
    assert "the toy images are gone" in error
    assert _error_lines(run_dir / "train.log")[-1].endswith(f" - ERROR - {error}")


def _wait_for(predicate, process, timeout=90.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_resume_of_a_run_still_training_is_refused(tmp_path, capsys):
    cfg = toy_config(model={"type": "ToyDetector", "delay": 1.0},
                     default_hooks={"checkpoint": {"iter_interval": 1, "max_keep": 0}})
    config = write_config(tmp_path / "toy.toml", cfg)
    runs = tmp_path / "runs"
    process = subprocess.Popen(
        [sys.executable, str(CLI), str(config), "--work-dir", str(runs)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=cli_env())
    try:
        _wait_for(lambda: any(runs.glob(f"*/{LAST_CHECKPOINT_FILE}")), process)
        run_dir = only_run_dir(runs)
        log_before = (run_dir / "train.log").read_text()
        assert main([str(config), "--work-dir", str(runs), "--resume"]) == 2
        assert _one_line_error(capsys) == (
            f"error: {run_dir} is in use by another training process (pid {process.pid}); "
            "wait for it to finish or resume another run")
        assert "resumed from" not in (run_dir / "train.log").read_text()
        assert (run_dir / "train.log").read_text().startswith(log_before)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    # the killed run's lock file is left behind, but its lock went with the process
    assert (run_dir / workdir.LOCK_FILE).is_file()
    assert main([str(config), "--work-dir", str(runs), "--resume",
                 "--set", "model.delay=0"]) == 0
    assert not (run_dir / workdir.LOCK_FILE).exists()


def test_lock_is_exclusive_between_processes_and_released_on_exit(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from core.engine.workdir import run_dir_lock\n"
         "with run_dir_lock(Path(sys.argv[1])):\n"
         "    print('locked', flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True, env=cli_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(workdir.RunDirBusyError, match=f"pid {holder.pid}"), \
                workdir.run_dir_lock(tmp_path):
            pass
    finally:
        holder.kill()
        holder.wait()
    with workdir.run_dir_lock(tmp_path):
        assert (tmp_path / workdir.LOCK_FILE).read_text().strip() == str(os.getpid())
    assert not (tmp_path / workdir.LOCK_FILE).exists()


def test_log_file_that_cannot_be_written_warns_once(tmp_path, capsys):
    logger, _ = setup_logger("unwritable", tmp_path / "train.log", rank=0)
    file_handler = next(h for h in logger.handlers if isinstance(h, logging.FileHandler))

    def no_space():
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    file_handler.stream.flush = no_space
    logger.info("one")
    logger.info("two")
    close_logger(logger)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"warning: cannot write {tmp_path / 'train.log'}: No space left on device"]
