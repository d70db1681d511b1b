"""Run directories ``<root>/<timestamp>/`` and finding the checkpoint to resume from.

``root`` is ``--work-dir`` when given, else ``work_dirs/<config file stem>``.
"""

from __future__ import annotations

import time
from pathlib import Path

from core.engine.checkpoint import read_last_checkpoint
from core.engine.dist import broadcast_object, get_rank
from core.errors import CheckpointError

WORK_DIRS = "work_dirs"
TIMESTAMP_FORMAT = "%Y%m%d_%H%M%S"


def work_root(config_path: str | None, work_dir: str | None) -> Path:
    """Where the runs of a config live."""
    if work_dir:
        return Path(work_dir)
    stem = Path(config_path).stem if config_path else "run"
    return Path(WORK_DIRS) / stem


def new_run_dir(root: Path) -> Path:
    """Create ``root/<timestamp>`` (suffixed ``_1``, ``_2``... if taken); same path on all ranks."""
    run_dir = None
    if get_rank() == 0:
        stamp = time.strftime(TIMESTAMP_FORMAT)
        candidate, suffix = root / stamp, 0
        while candidate.exists():
            suffix += 1
            candidate = root / f"{stamp}_{suffix}"
        candidate.mkdir(parents=True)
        run_dir = str(candidate)
    return Path(broadcast_object(run_dir))


def latest_checkpoint(root: Path) -> Path:
    """The most recently written checkpoint of any run under ``root``.

    :raises CheckpointError: when no run under ``root`` holds a checkpoint.
    """
    runs = sorted(p for p in root.glob("*") if p.is_dir())
    found = [c for c in (read_last_checkpoint(run) for run in runs) if c is not None]
    if not found:
        raise CheckpointError(f"--resume: no checkpoint found in any run under {root} "
                              f"(runs: {[p.name for p in runs] or 'none'})")
    return max(found, key=lambda c: c.stat().st_mtime_ns)
