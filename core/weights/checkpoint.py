"""Checkpoints of plugdet and of other frameworks, read without running any of their code.

:func:`read_checkpoint` tells the format of a file or URI (its ``source``):

* ``torchvision://NAME`` (``torchvision``): torch's hub cache, ``weights_only=True``;
* a plugdet ``.pth`` (``plugdet``), a torchvision ``state_dict`` (``torchvision``), an
  MMDetection / MMYOLO ``.pth`` (``mmdet``): ``torch.load(weights_only=True)``; MMEngine files
  with numpy scalars or a ``ConfigDict`` in ``meta``: the restricted unpickler, plain values
  kept;
* a checkpoint of the original RT-DETR code (``rtdetr``): ``torch.load(weights_only=True)``,
  the EMA model's state under ``ema`` -> ``module`` (else ``model``);
* an ultralytics ``.pt`` (``ultralytics``) or a YOLOv5 release ``.pt`` (``yolov5``): the
  restricted unpickler (:mod:`core.weights.safe_pickle`);
* ``.safetensors`` (``safetensors``, or ``plugdet`` when plugdet wrote it): no pickle at all.

A plugin's converter (stage ``weight_converter``) maps a :class:`PeerCheckpoint` to plugdet's
keys as a :class:`ConvertedState`; :func:`require_keys` is its check of the file's keys. The
three data types are the kernel's (:mod:`core.contracts`, which the stage's contract names).
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from core.contracts import ClassRows, ConvertedState, PeerCheckpoint
from core.errors import CheckpointError
from core.weights import pickled_models, torchvision_zoo
from core.weights.safe_pickle import load_restricted, module_state_dict, plain, widen_half
from core.weights.safetensors_files import read_safetensors

#: How many key names an error message lists before summarising the rest.
MAX_KEYS_IN_MESSAGE = 20
#: ``meta`` keys that MMEngine, MMCV 1.x and MMDetection write.
MM_META_KEYS = ("mmengine_version", "mmdet_version", "mmcv_version", "mmyolo_version",
                "dataset_meta", "CLASSES")
#: Key prefixes of MMDetection / MMYOLO detectors that plugdet's own models do not use at the
#: top (plugdet's two-stage detector shares ``rpn_head.`` and ``roi_head.`` with MMDetection).
MM_KEYS = ("bbox_head.", "data_preprocessor.")
#: The start of the top-level ``model = dict(`` of an MMEngine config text.
_MM_MODEL_START = re.compile(r"^model\s*=\s*dict\(", re.MULTILINE)
#: A bracket, or a ``type='Name'`` entry (group 1: the name).
_MM_TOKEN = re.compile(r"""[(\[{]|[)\]}]|\btype\s*=\s*['"]([\w.]+)['"]""")

__all__ = ["ClassRows", "ConvertedState", "PeerCheckpoint", "key_problems", "read_checkpoint",
           "require_keys"]


def _list_keys(title: str, keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:MAX_KEYS_IN_MESSAGE])
    more = len(keys) - MAX_KEYS_IN_MESSAGE
    return f"\n  {title} ({len(keys)}): {shown}" + (f", ... and {more} more" if more > 0 else "")


def key_problems(missing: Sequence[str], unexpected: Sequence[str],
                 mismatched: Sequence[str]) -> str:
    """The lines listing missing keys, unexpected keys and shape mismatches (each list cut
    after :data:`MAX_KEYS_IN_MESSAGE` names); empty when all three are."""
    return "".join(_list_keys(title, keys) for title, keys in (
        ("missing keys", missing), ("unexpected keys", unexpected),
        ("shape mismatches", mismatched)) if keys)


def _shape_fits(shape: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    return len(shape) == len(expected) and all(
        want in (-1, size) for size, want in zip(shape, expected, strict=True))


def require_keys(checkpoint: PeerCheckpoint,
                 expected: Mapping[str, tuple[int, ...]] | Iterable[str], *,
                 ignore: tuple[str, ...] = (), what: str = "") -> None:
    """Check that ``checkpoint.state`` has exactly the ``expected`` keys (and shapes).

    :param expected: key -> shape (``-1`` for any size, e.g. a class count), or the keys.
    :param ignore: prefixes of checkpoint keys that may be there without being expected.
    :param what: who expects them (``"torchvision/retinanet_resnet50_fpn"``), for the message.
    :raises CheckpointError: one message naming the file, listing every missing,
        unexpected and mis-shaped key.
    """
    shapes = dict(expected) if isinstance(expected, Mapping) else {}
    wanted = set(shapes) if isinstance(expected, Mapping) else set(expected)
    state = checkpoint.state
    missing = sorted(wanted - set(state))
    unexpected = sorted(key for key in set(state) - wanted if not key.startswith(ignore))
    mismatched = sorted(
        f"{key} (checkpoint {tuple(state[key].shape)} vs expected {tuple(shape)})"
        for key, shape in shapes.items()
        if key in state and not _shape_fits(tuple(state[key].shape), tuple(shape)))
    problems = key_problems(missing, unexpected, mismatched)
    if problems:
        raise CheckpointError(f"checkpoint {checkpoint.path} ({checkpoint.describe()}) does "
                              f"not fit {what or 'its converter'}:{problems}")


def _names(value: Any) -> tuple[str, ...] | None:
    """A list or tuple of class names as a tuple; None for anything else."""
    if isinstance(value, (list, tuple)) and all(isinstance(name, str) for name in value):
        return tuple(value)
    return None


def _load_torch_file(path: Path) -> Any:
    """The object of a torch file: ``torch.load(weights_only=True)``, or, when the pickle
    names a global outside torch's allow-list, :func:`~core.weights.safe_pickle.
    load_restricted` (which refuses anything that would run code)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # a global torch does not allow: the restricted reader
        return load_restricted(path)
    except Exception as exc:  # a corrupt or truncated file
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc


#: A key only the original RT-DETR code's detector has (its decoder's class heads).
RTDETR_KEY_PREFIX = "decoder.dec_score_head."


def _rtdetr_state(contents: dict[Any, Any]) -> dict[str, Tensor] | None:
    """The detector's tensors of a file the original RT-DETR code saved (the EMA model under
    ``ema`` -> ``module`` when there, else ``model``); None for any other layout."""
    ema = contents.get("ema")
    for state in (ema.get("module") if isinstance(ema, dict) else None, contents.get("model")):
        if (isinstance(state, dict) and state
                and all(isinstance(value, Tensor) for value in state.values())
                and any(str(key).startswith(RTDETR_KEY_PREFIX) for key in state)):
            return {str(key): widen_half(value) for key, value in state.items()}
    return None


def _state_of(contents: dict[Any, Any], path: Path) -> dict[str, Tensor]:
    """The tensors of a checkpoint dict: its ``state_dict`` (or ``model``) entry, or the
    dict itself."""
    state = next((contents[key] for key in ("state_dict", "model")
                  if isinstance(contents.get(key), dict)), contents)
    if not state or not all(isinstance(value, Tensor) for value in state.values()):
        raise CheckpointError(f"checkpoint {path} has no 'state_dict' of tensors")
    return {str(key): widen_half(value) for key, value in state.items()}


def _mm_architecture(meta: dict[str, Any]) -> str:
    """The model type of an MMEngine file's config (``cfg``, text or table) or an MMCV 1.x
    file's ``config`` text."""
    config = meta.get("cfg", meta.get("config"))
    if isinstance(config, dict):
        model = config.get("model")
        return str(model.get("type", "")) if isinstance(model, dict) else ""
    return _mm_model_type(config) if isinstance(config, str) else ""


def _mm_model_type(config: str) -> str:
    """The ``type`` of the top-level ``model = dict(...)`` of a config text, in whatever
    order its keys come (``cfg.pretty_text`` often writes ``type`` last): the ``type='X'``
    found at the dict's own level, not inside a nested ``dict(...)``; ``""`` without one."""
    start = _MM_MODEL_START.search(config)
    if start is None:
        return ""
    depth = 0
    for token in _MM_TOKEN.finditer(config, start.end()):
        if token.group(1) is not None:
            if depth == 0:
                return token.group(1)
        elif token.group(0) in "([{":
            depth += 1
        elif depth == 0:  # the model dict closes
            return ""
        else:
            depth -= 1
    return ""


def _from_pickled_model(contents: dict[str, Any], path: Path) -> PeerCheckpoint | None:
    model = pickled_models.pickled_model(contents)
    if model is None:
        return None
    source = pickled_models.model_source(model)
    if not source:
        raise CheckpointError(f"checkpoint {path} holds a pickled {model.qualified_name}, not "
                              "an ultralytics or YOLOv5 detection model")
    return PeerCheckpoint(source, module_state_dict(model), pickled_models.model_classes(model),
                          pickled_models.model_architecture(model),
                          pickled_models.model_meta(contents, model), str(path))


def _from_contents(contents: Any, path: Path) -> PeerCheckpoint:
    """Tell a loaded torch file's framework by its content (see the module docstring)."""
    if not isinstance(contents, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(contents).__name__}, not a dict")
    pickled = _from_pickled_model(contents, path)
    if pickled is not None:
        return pickled
    meta = plain(contents.get("meta")) if isinstance(contents.get("meta"), dict) else {}
    rtdetr = _rtdetr_state(contents)
    if rtdetr is not None:
        return PeerCheckpoint("rtdetr", rtdetr, None, "", meta, str(path))
    state = _state_of(contents, path)
    if "plugdet_version" in meta:
        return _plugdet(state, meta, path)
    if any(key in meta for key in MM_META_KEYS) or any(k.startswith(MM_KEYS) for k in state):
        dataset_meta = meta.get("dataset_meta")
        classes = _names(dataset_meta.get("classes") if isinstance(dataset_meta, dict)
                         else meta.get("CLASSES"))
        return PeerCheckpoint("mmdet", state, classes, _mm_architecture(meta), meta, str(path))
    if torchvision_zoo.looks_like_torchvision(state):
        architecture = torchvision_zoo.architecture(state)
        return PeerCheckpoint("torchvision", state,
                              torchvision_zoo.released_classes(path, architecture),
                              architecture, meta, str(path))
    return PeerCheckpoint("plugdet", state, None, "", meta, str(path))


def _plugdet(state: dict[str, Tensor], meta: dict[str, Any], path: Path) -> PeerCheckpoint:
    """A file plugdet wrote: a converted one names its classes and where it came from."""
    origin = meta.get("converted_from")
    architecture = origin.get("architecture", "") if isinstance(origin, dict) else ""
    return PeerCheckpoint("plugdet", state, _names(meta.get("classes")), str(architecture),
                          meta, str(path))


def _from_safetensors(path: Path) -> PeerCheckpoint:
    state, meta = read_safetensors(path)
    state = {key: widen_half(value) for key, value in state.items()}
    if "plugdet_version" in meta:
        return _plugdet(state, meta, path)
    architecture = meta.get("architecture")
    return PeerCheckpoint("safetensors", state, _names(meta.get("classes")),
                          architecture if isinstance(architecture, str) else "", meta,
                          str(path))


def _from_torchvision_uri(uri: str) -> PeerCheckpoint:
    state, weights = torchvision_zoo.download(uri)
    return PeerCheckpoint(
        "torchvision", {key: widen_half(value) for key, value in state.items()},
        torchvision_zoo.categories(weights), uri[len(torchvision_zoo.TORCHVISION_PREFIX):],
        {"url": weights.url, "weights": str(weights)}, uri)


def read_checkpoint(path_or_uri: str | os.PathLike[str]) -> PeerCheckpoint:
    """Read a checkpoint of any supported framework (see the module docstring), without
    running any code the file names.

    :raises CheckpointError: a missing or unreadable file, an offline ``torchvision://``
        (naming the URL to fetch elsewhere), or a pickle that would run code (naming the file
        and the refused global).
    """
    text = os.fspath(path_or_uri)
    if text.startswith(torchvision_zoo.TORCHVISION_PREFIX):
        return _from_torchvision_uri(text)
    path = Path(text)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        return _from_safetensors(path)
    return _from_contents(_load_torch_file(path), path)
