"""``load_from``: a checkpoint of plugdet or of another framework into a detector.

A file plugdet wrote is loaded key for key, as saved, unless it names its classes and class
rows (a converted file) and the dataset's classes differ. Any other file goes through the
registered :class:`~core.contracts.WeightConverter` of its source that accepts it and the
model, and is fitted to the model with the dataset's classes
(:func:`~core.weights.fitting.fit_to_model`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

import core
from core.contracts import WeightConverter, missing_members
from core.errors import CheckpointError, ContractError, PluginError
from core.plugins import get_registries
from core.registry import Registries
from core.weights.checkpoint import ClassRows, ConvertedState, PeerCheckpoint, read_checkpoint
from core.weights.fitting import FitReport, fit_to_model

STAGE = "weight_converter"
#: ``meta`` keys of a file plugdet converted: its classes, its class rows
#: (``key -> [groups, stride, offset, rows_per_class]``) and where it came from.
CLASSES_KEY, CLASS_ROWS_KEY, ORIGIN_KEY = "classes", "class_rows", "converted_from"


def weight_converters(registries: Registries | None = None
                      ) -> list[tuple[str, WeightConverter]]:
    """``(registered name, instance)`` of every registered converter, by name.

    :raises ContractError: a converter lacks a member of the contract.
    """
    registry = (registries or get_registries())[STAGE]
    converters = []
    for entry in registry:
        converter = entry.factory()
        missing = missing_members(WeightConverter, converter)
        if missing:
            raise ContractError(f"{STAGE} {entry.name!r} from {entry.origin.distribution} "
                                f"does not satisfy core.contracts.WeightConverter: missing "
                                f"{', '.join(missing)}")
        converters.append((entry.name, converter))
    return converters


def _model_description(model: nn.Module) -> str:
    head = getattr(model, "head", None)
    return type(model).__name__ + (f" (head {type(head).__name__})" if head is not None else "")


def find_converter(checkpoint: PeerCheckpoint, model: nn.Module,
                   registries: Registries | None = None) -> tuple[str, WeightConverter]:
    """``(name, converter)`` of the first registered converter (by name) of the checkpoint's
    source that accepts the checkpoint and ``model``.

    :raises CheckpointError: none does; the message lists the converters of that source.
    """
    converters = [(name, converter) for name, converter in weight_converters(registries)
                  if converter.source == checkpoint.source]
    for name, converter in converters:
        if converter.accepts(checkpoint, model):
            return name, converter
    listed = ", ".join(name for name, _ in converters) or "none is installed"
    raise CheckpointError(
        f"no weight converter reads {checkpoint.path} ({checkpoint.describe()}) into "
        f"{_model_description(model)}; converters of {checkpoint.source} files: {listed} "
        "(`plugdet weights list` lists them with the configs that build their models)")


def class_rows_meta(rows: Mapping[str, ClassRows]) -> dict[str, list[int | None]]:
    """Class rows as plain data for a checkpoint's ``meta``: ``key -> [groups, stride,
    offset, rows_per_class]``."""
    return {key: [row.groups, row.stride, row.offset, row.rows_per_class]
            for key, row in rows.items()}


def class_rows_from_meta(value: Any) -> dict[str, ClassRows]:
    """The class rows a converted file's ``meta`` records (empty for other files; a record
    without ``rows_per_class`` has one row per class)."""
    if not isinstance(value, dict):
        return {}
    return {str(key): ClassRows(int(row[0]), None if row[1] is None else int(row[1]),
                                int(row[2]), int(row[3]) if len(row) == 4 else 1)
            for key, row in value.items()
            if isinstance(row, (list, tuple)) and len(row) in (3, 4)}


def converted_meta(classes: Sequence[str] | None, class_rows: Mapping[str, ClassRows],
                   checkpoint: PeerCheckpoint, origin: str) -> dict[str, Any]:
    """The ``meta`` of a file plugdet writes from a converted checkpoint: the model's classes
    and class rows (so that loading it into other classes fits them again) and where it came
    from."""
    return {"plugdet_version": core.__version__,
            CLASSES_KEY: list(classes) if classes is not None else None,
            CLASS_ROWS_KEY: class_rows_meta(class_rows),
            ORIGIN_KEY: {"path": checkpoint.path, "source": checkpoint.source,
                         "architecture": checkpoint.architecture, "converter": origin}}


def loads_exactly(checkpoint: PeerCheckpoint, dataset_classes: Sequence[str] | None) -> bool:
    """Whether a checkpoint is loaded key for key as saved: a file plugdet wrote whose classes
    are unknown, or the dataset's, or which records no class rows to fit."""
    if checkpoint.source != "plugdet":
        return False
    return (checkpoint.classes is None or dataset_classes is None
            or tuple(dataset_classes) == checkpoint.classes
            or not class_rows_from_meta(checkpoint.meta.get(CLASS_ROWS_KEY)))


def convert_checkpoint(checkpoint: PeerCheckpoint, model: nn.Module,
                       registries: Registries | None = None) -> tuple[ConvertedState, str]:
    """The checkpoint in plugdet's keys and the name of what converted it (``"plugdet"``
    for plugdet's own files).

    :raises CheckpointError: no converter accepts it, or the file does not fit the converter.
    """
    if checkpoint.source == "plugdet":
        rows = class_rows_from_meta(checkpoint.meta.get(CLASS_ROWS_KEY))
        return ConvertedState(checkpoint.state, rows, checkpoint.classes), "plugdet"
    name, converter = find_converter(checkpoint, model, registries)
    converted = converter.convert(checkpoint, model)
    if not isinstance(converted, ConvertedState):
        raise PluginError(f"{STAGE} {name!r}: convert returned a {type(converted).__name__}, "
                          "not a ConvertedState")
    return converted, name


def load_pretrained_detector(model: nn.Module, load_from: str | PeerCheckpoint,
                             dataset_classes: Sequence[str] | None,
                             class_map: Mapping[str, str] | None,
                             logger: logging.Logger) -> FitReport:
    """Convert ``load_from`` (a path, ``torchvision://NAME``, or a checkpoint already read)
    and fit it to ``model`` with the dataset's classes; logs the report's line.

    :param class_map: dataset class -> checkpoint class (``load_from_class_map``).
    :raises CheckpointError: the file cannot be read, converted or fitted.
    """
    checkpoint = load_from if isinstance(load_from, PeerCheckpoint) else \
        read_checkpoint(load_from)
    converted, origin = convert_checkpoint(checkpoint, model)
    report = fit_to_model(converted, model, dataset_classes, class_map, checkpoint.path, origin)
    logger.info(report.log_line())
    return report
