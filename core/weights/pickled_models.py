"""What an ultralytics or YOLOv5 ``.pt`` file's pickled ``DetectionModel`` says: which
framework wrote it, its class names and its model yaml (read by :mod:`core.weights.safe_pickle`,
never run)."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from torch import Tensor

from core.weights.safe_pickle import PickledObject, plain

#: Where each framework's detection model classes live -> the checkpoint source.
MODEL_SOURCES = (("ultralytics.", "ultralytics"), ("models.", "yolov5"),
                 ("yolov5.models.", "yolov5"))


def pickled_model(contents: Any) -> PickledObject | None:
    """The model object of a checkpoint dict, as ultralytics and YOLOv5 load it: ``ema``
    when the file has one, else ``model``; None when neither is a pickled object."""
    if not isinstance(contents, dict):
        return None
    for key in ("ema", "model"):
        if isinstance(contents.get(key), PickledObject):
            model: PickledObject = contents[key]
            return model
    return None


def model_source(model: PickledObject) -> str:
    """``"ultralytics"`` or ``"yolov5"`` from the module of the model's class, or ``""``."""
    for prefix, source in MODEL_SOURCES:
        if model.qualified_name.startswith(prefix):
            return source
    return ""


def model_classes(model: PickledObject) -> tuple[str, ...] | None:
    """The model's ``names`` (a dict ``index -> name`` or a list) in index order."""
    names = model.attributes().get("names")
    if isinstance(names, dict) and sorted(names) == list(range(len(names))):
        return tuple(str(names[index]) for index in range(len(names)))
    if isinstance(names, (list, tuple)):
        return tuple(str(name) for name in names)
    return None


def model_architecture(model: PickledObject) -> str:
    """The model yaml's file name (``yolov8n.yaml``; ultralytics keeps it in the yaml dict,
    YOLOv5 on the model), ``"yolov5"`` for an anchor-based yaml without one, else ``""``."""
    attributes = model.attributes()
    yaml = attributes.get("yaml")
    yaml = yaml if isinstance(yaml, dict) else {}
    for name in (yaml.get("yaml_file"), attributes.get("yaml_file")):
        if isinstance(name, str) and name:
            return PurePath(name).name
    return "yolov5" if "anchors" in yaml else ""


def model_meta(contents: dict[str, Any], model: PickledObject) -> dict[str, Any]:
    """The file's plain entries (date, version, training arguments, ...) and the model's
    class path, yaml dict and strides."""
    attributes = model.attributes()
    stride = attributes.get("stride")
    meta = {key: plain(value) for key, value in contents.items()
            if key not in ("model", "ema", "optimizer") and isinstance(key, str)}
    meta = {key: value for key, value in meta.items() if value is not None}
    meta["model_class"] = model.qualified_name
    meta["yaml"] = plain(attributes.get("yaml")) or {}
    if isinstance(stride, Tensor):
        meta["stride"] = stride.tolist()
    return meta
