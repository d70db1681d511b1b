"""Checkpoint files: atomic writes, safe loads and key checks against a model.

Every file is read with ``torch.load(weights_only=True)``, so a checkpoint holds only tensors
and plain Python containers (dict, list, tuple, str, int, float, bool, None), or is a
``.safetensors`` file (no pickle at all).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import CheckpointError, writing
from core.weights.safetensors_files import read_safetensors

#: Prefix of the temporary files of unfinished atomic writes.
TEMP_PREFIX = ".tmp-"
#: Name of the text file in a run directory that holds the latest checkpoint's file name.
LAST_CHECKPOINT_FILE = "last_checkpoint"
#: How many key names an error message lists before summarising the rest.
MAX_KEYS_IN_MESSAGE = 20


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, write: Any) -> None:
    """Write a file so that readers see either the old file or the complete new one.

    ``write(fileobj)`` fills a temporary file in the same directory; it is flushed and fsynced,
    moved over ``path`` with ``os.replace`` and the directory is fsynced. A crash at any point
    leaves the previous ``path`` untouched (and at worst a stray ``.tmp-*`` file).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fileobj:
            write(fileobj)
            fileobj.flush()
            os.fsync(fileobj.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def remove_partial_writes(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writers left in ``directory``; returns them.

    Only call this when no other process writes into ``directory``.
    """
    stale = sorted(Path(directory).glob(f"{TEMP_PREFIX}*"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def save_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    """Atomically ``torch.save`` ``checkpoint`` to ``path``.

    :raises RunFileError: naming ``path`` when it cannot be written (full disk, read-only
        folder); the previous file at ``path`` is kept.
    """
    with writing(path):
        atomic_write_bytes(path, lambda fileobj: torch.save(checkpoint, fileobj))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True`` (a ``.safetensors`` file as
    ``{"meta", "state_dict"}``); CheckpointError naming the file on failure."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        state, meta = read_safetensors(path)
        return {"meta": meta, "state_dict": state}
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt file or disallowed (code-executing) content
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(checkpoint).__name__}, not a dict")
    return checkpoint


def model_state_from(checkpoint: dict[str, Any], source: str) -> dict[str, torch.Tensor]:
    """The model weights of a checkpoint (``state_dict`` entry, or a bare state dict)."""
    state = checkpoint.get("state_dict", checkpoint)
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {source} has no 'state_dict' of tensors")
    return state


def _list_keys(title: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_KEYS_IN_MESSAGE])
    more = len(keys) - MAX_KEYS_IN_MESSAGE
    return f"\n  {title} ({len(keys)}): {shown}" + (f", ... and {more} more" if more > 0 else "")


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy ``state`` into ``model`` after checking that keys and shapes match exactly.

    :raises CheckpointError: listing missing keys (in the model, not in the checkpoint),
        unexpected keys (in the checkpoint, not in the model) and shape mismatches.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        f"{key} (checkpoint {tuple(state[key].shape)} vs model {tuple(own[key].shape)})"
        for key in set(own) & set(state)
        if state[key].shape != own[key].shape
    )
    if missing or unexpected or mismatched:
        message = f"checkpoint {source} does not fit the model {type(model).__name__}:"
        if missing:
            message += _list_keys("missing keys", missing)
        if unexpected:
            message += _list_keys("unexpected keys", unexpected)
        if mismatched:
            message += _list_keys("shape mismatches", mismatched)
        raise CheckpointError(message)
    model.load_state_dict(state, strict=True)


def write_last_checkpoint(run_dir: str | os.PathLike, filename: str) -> None:
    """Record ``filename`` as the newest checkpoint of ``run_dir`` (atomically).

    :raises RunFileError: naming the pointer file when it cannot be written.
    """
    pointer = Path(run_dir) / LAST_CHECKPOINT_FILE
    with writing(pointer):
        atomic_write_bytes(pointer, lambda fileobj: fileobj.write(filename.encode()))


def read_last_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest checkpoint of ``run_dir``, or ``None`` if it has none.

    :raises CheckpointError: when the pointer cannot be read, is not text, or names anything
        but a file directly in ``run_dir`` (``../``, an absolute path): nothing outside the
        run is read or cleaned.
    """
    pointer = Path(run_dir) / LAST_CHECKPOINT_FILE
    if not pointer.is_file():
        return None
    try:  # undecodable bytes become unprintable surrogates
        name = pointer.read_bytes().decode("utf-8", "surrogateescape").strip()
    except OSError as exc:
        raise CheckpointError(f"cannot read {pointer}: {exc.strerror or exc}") from None
    if not name.isprintable():
        raise CheckpointError(f"{pointer}: not a text file naming a checkpoint; delete it, or "
                              "continue a checkpoint of the run with --resume PATH")
    if not name or Path(name).name != name or name in (".", ".."):
        raise CheckpointError(f"{pointer}: {name!r} is not a file of its run directory; "
                              f"refusing to resume from it")
    path = Path(run_dir) / name
    return path if path.is_file() else None
