"""Checkpoint files as other frameworks write them, made here: a pickled ultralytics or YOLOv5
model (its classes under the frameworks' module paths, present only while saving), and
pickles that would run code when loaded."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn


@contextlib.contextmanager
def modules_named(name: str, **classes: type) -> Iterator[None]:
    """Put ``classes`` into a module ``name`` (and its parent packages) in ``sys.modules``
    while the block runs, so that pickle names them ``name.Class``; then remove them."""
    parts = name.split(".")
    added = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    if any(module in sys.modules for module in added):
        raise RuntimeError(f"{name}: a module of that name is already imported")
    for module in added:
        sys.modules[module] = types.ModuleType(module)
    for class_name, cls in classes.items():
        cls.__module__ = name
        cls.__qualname__ = class_name
        setattr(sys.modules[name], class_name, cls)
    try:
        yield
    finally:
        for module in added:
            del sys.modules[module]


class Conv(nn.Module):
    """ultralytics' ``Conv``: conv, batch norm, SiLU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.SiLU()


class Detect(nn.Module):
    """A head with a persistent and a non-persistent buffer, like ``Detect``'s anchors."""

    def __init__(self, c_in: int, num_classes: int) -> None:
        super().__init__()
        self.cv3 = nn.ModuleList([nn.Conv2d(c_in, num_classes, 1) for _ in range(2)])
        self.register_buffer("anchors", torch.rand(3, 2))
        self.register_buffer("grid_cache", torch.rand(4), persistent=False)
        self.nc = num_classes


class DetectionModel(nn.Module):
    """The model object ultralytics and YOLOv5 pickle: ``model`` (a Sequential of layers),
    ``yaml``, ``names``, ``stride``."""

    def __init__(self, yaml: dict[str, Any], names: Any) -> None:
        super().__init__()
        self.model = nn.Sequential(Conv(3, 8), Conv(8, 8), Detect(8, len(names)))
        self.yaml = yaml
        self.names = names
        self.stride = torch.tensor([8.0, 16.0, 32.0])


def save_pickled_model(path: Path, module: str, yaml: dict[str, Any], names: Any,
                       legacy: bool = False, **attributes: Any) -> nn.Module:
    """Save ``{"model": DetectionModel (fp16), ...}`` as ``module.DetectionModel`` pickles it;
    returns the model (its classes are this file's again)."""
    torch.manual_seed(0)
    model = DetectionModel(yaml, names)
    for name, value in attributes.items():
        setattr(model, name, value)
    model.half()
    checkpoint = {"model": model, "ema": None, "optimizer": None, "date": "2026-01-01",
                  "version": "8.4.190", "train_args": {"imgsz": 640, "epochs": 3}}
    classes = {"DetectionModel": DetectionModel, "Conv": Conv, "Detect": Detect}
    try:
        with modules_named(module, **classes):
            torch.save(checkpoint, path, _use_new_zipfile_serialization=not legacy)
    finally:
        for name, cls in classes.items():
            cls.__module__, cls.__qualname__ = __name__, name
    return model


class Runs:
    """An object whose pickle calls ``function(*args)`` when loaded."""

    def __init__(self, function: Any, *args: Any) -> None:
        self.function = function
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.function, self.args


def harmful_objects(marker: Path) -> dict[str, Runs]:
    """Objects that, unpickled without care, create ``marker``, by the global their pickle
    names (``posix.system``, ``io.open``, ...)."""
    objects = [Runs(os.system, f"touch {marker}"), Runs(open, str(marker), "w"),
               Runs(subprocess.call, ["touch", str(marker)]),
               Runs(exec, f"open({str(marker)!r}, 'w')")]
    return {f"{o.function.__module__}.{o.function.__qualname__}": o for o in objects}
