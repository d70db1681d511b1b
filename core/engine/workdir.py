"""Run directories ``<root>/<timestamp>/``, their lock, and finding the checkpoint to resume
from.

``root`` is ``--work-dir`` when given, else ``work_dirs/<config file stem>``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from core.engine.checkpoint import read_last_checkpoint
from core.engine.dist import broadcast_object, get_rank
from core.errors import CheckpointError, ConfigError, PlugdetError, RunFileError, writing

WORK_DIRS = "work_dirs"
TIMESTAMP_FORMAT = "%Y%m%d_%H%M%S"
#: How many checkpoint files an error message lists.
MAX_LISTED = 10
#: The file of a run directory that a training process locks (it holds the process id).
LOCK_FILE = "train.lock"


class RunDirBusyError(PlugdetError):
    """Another process is training into the run directory."""


def work_root(config_path: str | None, work_dir: str | None) -> Path:
    """Where the runs of a config live."""
    if work_dir:
        return Path(work_dir)
    stem = Path(config_path).stem if config_path else "run"
    return Path(WORK_DIRS) / stem


def new_run_dir(root: Path) -> Path:
    """Create ``root/<timestamp>`` (suffixed ``_1``, ``_2``... if taken); same path on all ranks.

    The name is claimed by ``mkdir`` itself, so runs started in the same second (even by
    other processes) get distinct directories.

    :raises ConfigError: when the directory cannot be created (read-only or missing root,
        a file in the way), naming the root and the reason.
    """
    outcome: tuple[str, str] | None = None
    if get_rank() == 0:
        outcome = _claim_run_dir(root)
    run_dir, error = broadcast_object(outcome)
    if error:
        raise ConfigError(error)
    return Path(run_dir)


def _claim_run_dir(root: Path) -> tuple[str, str]:
    """``(run directory, "")`` or ``("", error message)``."""
    stamp = time.strftime(TIMESTAMP_FORMAT)
    candidate, suffix = root / stamp, 0
    try:
        root.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                candidate.mkdir()
                return str(candidate), ""
            except FileExistsError:
                suffix += 1
                candidate = root / f"{stamp}_{suffix}"
    except OSError as exc:
        return "", (f"cannot create the run directory under {root} (--work-dir): "
                    f"{exc.strerror or exc}")


def holds_results(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a checkpoint or a non-empty log (more than the config a run
    writes when it starts)."""
    return any(run_dir.rglob("*.pth")) or any(
        log.stat().st_size > 0 for log in run_dir.glob("*.log"))


@contextmanager
def removed_if_left_empty(run_dir: Path) -> Iterator[None]:
    """Remove ``run_dir`` (rank 0) when the block fails before writing any result into it
    (see :func:`holds_results`)."""
    try:
        yield
    except BaseException:
        if get_rank() == 0 and run_dir.is_dir() and not holds_results(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


@contextmanager
def run_dir_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` for one training process during the block (rank 0 takes the lock).

    The lock is a ``flock`` of ``run_dir/train.lock``, which holds the owner's process id; the
    file is removed at the end of the block. The operating system drops the lock of a process
    that dies, so a file left by a killed run does not block.

    :raises RunDirBusyError: when another process holds the lock, naming its process id.
    :raises RunFileError: when the lock file cannot be created (read-only run directory).
    """
    fd, error = None, None
    if get_rank() == 0:
        try:
            fd = _lock(run_dir / LOCK_FILE)
        except PlugdetError as exc:
            error = exc
    error = broadcast_object(error)
    if error is not None:
        raise error
    try:
        yield
    finally:
        if fd is not None:
            with suppress(OSError):  # a read-only run directory keeps the (unlocked) file
                (run_dir / LOCK_FILE).unlink(missing_ok=True)
            os.close(fd)


def _lock(path: Path) -> int:
    """Lock ``path`` (created if missing) and write our process id into it.

    :returns: the open file descriptor, whose closing releases the lock.
    """
    while True:
        with writing(path):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 64).decode(errors="replace").strip()
            os.close(fd)
            by = f" (pid {owner})" if owner.isdigit() else ""
            raise RunDirBusyError(f"{path.parent} is in use by another training process{by}; "
                                  "wait for it to finish or resume another run") from None
        except OSError as exc:  # a file system without locks
            os.close(fd)
            raise RunFileError(f"cannot lock {path}: {exc.strerror or exc}") from exc
        if _is_file_at(fd, path):
            break
        os.close(fd)  # the owner removed the file as it finished: lock the one at the path now
    try:
        with writing(path):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
    except BaseException:
        os.close(fd)
        raise
    return fd


def _is_file_at(fd: int, path: Path) -> bool:
    try:
        at_path = path.stat()
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (at_path.st_dev, at_path.st_ino)


def latest_checkpoint(root: Path) -> Path:
    """The most recently written checkpoint of any run under ``root``.

    :raises CheckpointError: when no run under ``root`` holds a checkpoint; the message names
        the checkpoint files seen (e.g. a ``best_*.pth`` that can be resumed by path).
    """
    runs = sorted(p for p in root.glob("*") if p.is_dir())
    found = [c for c in (read_last_checkpoint(run) for run in runs) if c is not None]
    if not found:
        seen = sorted(str(p.relative_to(root)) for run in runs for p in run.glob("*.pth"))
        files = (f"; checkpoint files seen: {', '.join(seen[:MAX_LISTED])}"
                 + (f" and {len(seen) - MAX_LISTED} more" if len(seen) > MAX_LISTED else "")
                 + " (continue one with --resume PATH)") if seen else ""
        raise CheckpointError(f"--resume: no checkpoint found in any run under {root} "
                              f"(runs: {[p.name for p in runs] or 'none'}){files}")
    return max(found, key=lambda c: c.stat().st_mtime_ns)
