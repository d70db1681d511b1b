"""Which weights the visualized model runs with: a plugdet checkpoint's, or the initial ones."""

from __future__ import annotations

from typing import Any

from torch import nn

from core.api import CheckpointError, load_checkpoint, load_model_state, model_state_from

#: Checkpoint entry of the training weights and of the EMAHook's averaged weights.
TRAINING_STATE = "state_dict"
EMA_STATE = "ema_state_dict"


def read_checkpoint(path: str) -> dict[str, Any]:
    """The checkpoint dict of ``path`` (``weights_only=True``).

    :raises CheckpointError: naming ``path``: missing file, or one torch cannot read (said
        plainly instead of torch's advice to load it with ``weights_only=False``).
    """
    try:
        return load_checkpoint(path)
    except CheckpointError as exc:
        cause = exc.__cause__
        if cause is None:
            raise
        raise CheckpointError(
            f"cannot read checkpoint {path} ({type(cause).__name__}): the file is truncated "
            "or corrupt, or holds more than tensors and plain Python containers (it is read "
            "with weights_only=True)") from cause


def load_weights(detector: nn.Module, path: str, ema: bool = False) -> dict[str, Any]:
    """Copy the weights of the checkpoint ``path`` (read with ``weights_only=True``) into
    ``detector``: its training weights (``state_dict``), or with ``ema`` the averaged ones an
    EMAHook stored (``ema_state_dict``); returns the record for ``positives.json``:
    ``{"checkpoint", "state", "epoch", "iter"}`` (epoch and iter ``None`` when the file has
    no ``meta``).

    :raises CheckpointError: naming ``path`` for a missing, unreadable or corrupt file, a
        file without the requested weights, or weights that do not fit ``detector``.
    """
    checkpoint = read_checkpoint(path)
    if ema:
        state = checkpoint.get(EMA_STATE)
        if not isinstance(state, dict):
            raise CheckpointError(f"checkpoint {path} has no '{EMA_STATE}' (it is written by "
                                  "an EMAHook); drop --ema to use its training weights")
        state = model_state_from({TRAINING_STATE: state}, path)
    else:
        state = model_state_from(checkpoint, path)
    load_model_state(detector, state, path)
    meta = checkpoint.get("meta") if isinstance(checkpoint.get("meta"), dict) else {}
    return {"checkpoint": str(path), "state": EMA_STATE if ema else TRAINING_STATE,
            "epoch": meta.get("epoch"), "iter": meta.get("iter")}


def initial_weights() -> dict[str, Any]:
    """The ``positives.json`` record of a model that runs with its initial weights."""
    return {"checkpoint": None, "state": "initial", "epoch": None, "iter": None}


def untrained_warning(assigner: Any) -> str | None:
    """A warning for an assigner that ranks priors by the model's predictions (its
    ``uses_predictions`` is true) when no checkpoint is loaded, else ``None``."""
    if not getattr(assigner, "uses_predictions", False):
        return None
    return (f"{type(assigner).__name__} chooses positives from the model's predictions and "
            "no --checkpoint was given: the positives drawn come from an untrained model's "
            "predictions, not from what training converges to")
