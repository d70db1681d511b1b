"""Read an offline wandb run back from its ``run-ID.wandb`` file (no network, no service).

The file is a LevelDB-style log: a 7-byte header (``:W&B``, magic ``0xBEE1``, version), then
records in 32 KiB blocks, each chunk prefixed by ``crc32 (4) | length (2) | kind (1)``; a
record is split into FIRST/MIDDLE/LAST chunks when it crosses a block boundary. Every record
is a ``wandb_internal_pb2.Record`` protobuf.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import attrs
from wandb.proto import wandb_internal_pb2

FILE_IDENT = b":W&B"
FILE_HEADER_LEN = 7
BLOCK_SIZE = 32768
CHUNK_HEADER = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@attrs.define
class OfflineRun:
    """What an offline run recorded.

    :ivar config: the run config (``run.config``), values decoded from JSON.
    :ivar history: one dict per ``run.log`` call (keys joined with ``.`` when nested).
    :ivar summary: the final summary values.
    :ivar artifacts: ``(name, type)`` of every logged artifact.
    """

    config: dict[str, Any] = attrs.field(factory=dict)
    history: list[dict[str, Any]] = attrs.field(factory=list)
    summary: dict[str, Any] = attrs.field(factory=dict)
    artifacts: list[tuple[str, str]] = attrs.field(factory=list)


def iter_records(path: str | Path) -> list[wandb_internal_pb2.Record]:
    """Every record of a ``.wandb`` file, in order."""
    data = Path(path).read_bytes()
    if data[: len(FILE_IDENT)] != FILE_IDENT:
        raise ValueError(f"{path}: not a wandb run file (missing the {FILE_IDENT!r} header)")
    records, pending, pos = [], b"", FILE_HEADER_LEN
    while pos + CHUNK_HEADER.size <= len(data):
        block_left = BLOCK_SIZE - pos % BLOCK_SIZE
        if block_left < CHUNK_HEADER.size:
            pos += block_left
            continue
        _, length, kind = CHUNK_HEADER.unpack_from(data, pos)
        if kind not in (FULL, FIRST, MIDDLE, LAST):  # zero padding: go on at the next block
            pos += block_left
            continue
        chunk = data[pos + CHUNK_HEADER.size : pos + CHUNK_HEADER.size + length]
        pos += CHUNK_HEADER.size + length
        if kind == FULL:
            records.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        else:
            records.append(pending + chunk)
            pending = b""
    parsed = []
    for raw in records:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        parsed.append(record)
    return parsed


def _item_key(item: Any) -> str:
    return item.key or ".".join(item.nested_key)


def _set_nested(target: dict[str, Any], item: Any) -> None:
    keys = [item.key] if item.key else list(item.nested_key)
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = json.loads(item.value_json)


def read_offline_run(run_dir: str | Path) -> OfflineRun:
    """Read ``run_dir`` (``.../wandb/offline-run-*``) back into an :class:`OfflineRun`."""
    files = sorted(Path(run_dir).glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"{run_dir}: no run-*.wandb file")
    run = OfflineRun()
    for record in iter_records(files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            for item in record.run.config.update:
                _set_nested(run.config, item)
        elif kind == "config":
            for item in record.config.update:
                _set_nested(run.config, item)
        elif kind == "history":
            run.history.append(
                {_item_key(item): json.loads(item.value_json) for item in record.history.item}
            )
        elif kind == "summary":
            for item in record.summary.update:
                _set_nested(run.summary, item)
        elif kind == "artifact":
            run.artifacts.append((record.artifact.name, record.artifact.type))
    return run
