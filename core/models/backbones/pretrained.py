"""Loading pretrained weights into a backbone (``init_cfg = {type = "Pretrained", ...}``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from core.errors import CheckpointError, ConfigError

logger = logging.getLogger("plugdet")

TORCHVISION_PREFIX = "torchvision://"
INIT_TYPE_PRETRAINED = "Pretrained"
# Keys under which training checkpoints commonly nest the weights.
NESTED_STATE_KEYS = ("state_dict", "model")
#: False while models are built only to check a config (see :func:`pretrained_weights_skipped`).
_READ_WEIGHTS: ContextVar[bool] = ContextVar("plugdet_read_pretrained_weights", default=True)


@contextmanager
def pretrained_weights_skipped() -> Iterator[None]:
    """Build models without reading the weights their ``init_cfg`` names (no file is read,
    nothing is downloaded); the ``init_cfg`` itself is still checked. For checking a config."""
    token = _READ_WEIGHTS.set(False)
    try:
        yield
    finally:
        _READ_WEIGHTS.reset(token)


def _torchvision_weights_url(name: str) -> str:
    """URL of torchvision's default ImageNet weights for model ``name`` (e.g. "resnet50")."""
    try:
        weights_enum = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"init_cfg.checkpoint: unknown torchvision model {name!r}") from exc
    url: str = weights_enum.DEFAULT.url
    return url


def load_state_dict_file(checkpoint: str) -> dict[str, torch.Tensor]:
    """Read a state dict from ``torchvision://NAME`` or a local file (never executes code).

    A file holding ``{"state_dict": ...}`` or ``{"model": ...}`` is unwrapped.
    """
    if checkpoint.startswith(TORCHVISION_PREFIX):
        url = _torchvision_weights_url(checkpoint[len(TORCHVISION_PREFIX) :])
        try:
            state = torch.hub.load_state_dict_from_url(
                url, map_location="cpu", progress=False, weights_only=True
            )
        except OSError as exc:
            raise CheckpointError(
                f"init_cfg.checkpoint {checkpoint!r}: cannot download {url} ({exc}); "
                "download it elsewhere and give its local path instead"
            ) from exc
    else:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise CheckpointError(f"init_cfg.checkpoint: file not found: {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for corrupt/unsafe files
            raise CheckpointError(f"init_cfg.checkpoint: cannot read {path}: {exc}") from exc
    for key in NESTED_STATE_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise CheckpointError(f"init_cfg.checkpoint {checkpoint!r}: does not hold a state dict")
    return state


def load_pretrained(
    module: nn.Module,
    init_cfg: dict[str, Any],
    *,
    ignore_prefixes: tuple[str, ...] = (),
    new_prefixes: tuple[str, ...] = (),
) -> None:
    """Load ``init_cfg["checkpoint"]`` into ``module`` (non-strict) and report key mismatches.

    :param init_cfg: ``{"type": "Pretrained", "checkpoint": PATH_OR_URL, "prefix": OPTIONAL}``;
        with ``prefix`` only keys starting with it are used, with the prefix removed (e.g.
        ``"backbone."`` to take the backbone out of a detector checkpoint).
    :param ignore_prefixes: checkpoint keys expected to be unused (e.g. a classifier ``"fc."``).
    :param new_prefixes: model keys a plain checkpoint does not have (layers inserted by
        config); those missing from the checkpoint are reported as newly initialised.
    :raises ConfigError: on a malformed ``init_cfg``.
    :raises CheckpointError: when the file is unreadable or no key matches the module.
    """
    if init_cfg.get("type") != INIT_TYPE_PRETRAINED:
        raise ConfigError(
            f"init_cfg.type: expected {INIT_TYPE_PRETRAINED!r}, got {init_cfg.get('type')!r}"
        )
    checkpoint = init_cfg.get("checkpoint")
    if not isinstance(checkpoint, str) or not checkpoint:
        raise ConfigError("init_cfg.checkpoint: expected a non-empty path or torchvision://NAME")
    unknown = set(init_cfg) - {"type", "checkpoint", "prefix"}
    if unknown:
        raise ConfigError(f"init_cfg: unknown keys {sorted(unknown)}")
    if not _READ_WEIGHTS.get():
        if checkpoint.startswith(TORCHVISION_PREFIX):  # a known name, without the download
            _torchvision_weights_url(checkpoint[len(TORCHVISION_PREFIX) :])
        return
    state = load_state_dict_file(checkpoint)
    prefix = init_cfg.get("prefix", "")
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    state = {k: v for k, v in state.items() if not k.startswith(ignore_prefixes)}
    own_keys = set(module.state_dict())
    if not own_keys & set(state):
        raise CheckpointError(
            f"init_cfg.checkpoint {checkpoint!r}: no key matches the model "
            f"(checkpoint keys look like {sorted(state)[:3]}, "
            f"model keys like {sorted(own_keys)[:3]})"
        )
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise CheckpointError(f"init_cfg.checkpoint {checkpoint!r}: {exc}") from exc
    new = [key for key in result.missing_keys if key.startswith(new_prefixes)]
    missing = [key for key in result.missing_keys if not key.startswith(new_prefixes)]
    if new:
        logger.info(
            "%s: %d newly initialised tensors (inserted layers, not in %s): %s",
            type(module).__name__,
            len(new),
            checkpoint,
            ", ".join(new),
        )
    for kind, keys in (("missing", missing), ("unexpected", result.unexpected_keys)):
        if keys:
            logger.warning(
                "%s: %s keys in %s: %s", type(module).__name__, kind, checkpoint, ", ".join(keys)
            )
    logger.info(
        "%s: loaded %d tensors from %s",
        type(module).__name__,
        len(state) - len(result.unexpected_keys),
        checkpoint,
    )
