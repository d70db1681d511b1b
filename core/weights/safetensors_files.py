"""``.safetensors`` files: tensors and a header of string metadata, read without any pickle.

plugdet writes each metadata value as JSON (a list of classes stays a list) and reads a value
that is not JSON (another writer's ``"format": "pt"``) as the string it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from core.errors import CheckpointError


def read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The tensors of ``path`` and its header metadata (values JSON-decoded where they are
    JSON).

    :raises CheckpointError: naming the file when it is not a safetensors file.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
            state = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    return state, {key: _decode(value) for key, value in metadata.items()}


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def safetensors_bytes(state: Mapping[str, Tensor], meta: Mapping[str, Any]) -> bytes:
    """The bytes of a safetensors file holding ``state`` (made contiguous) with ``meta``
    (plain values) in its header, each value as JSON."""
    from safetensors.torch import save

    tensors = {key: value.detach().contiguous() for key, value in state.items()}
    return save(tensors, metadata={key: json.dumps(value) for key, value in meta.items()})
