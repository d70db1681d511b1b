"""The head's class count follows the dataset: ``model.head.num_classes`` from its classes.

The classes of a dataset table are read without building the dataset (which may generate or
parse a large amount of data): the table's ``classes`` key, else the dataset class's
``CLASSES`` attribute, else the default of its ``classes`` parameter.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from typing import Any

from core.errors import ConfigError

#: Dataset tables looked at, in this order: the first with known classes sets the count.
DATASET_KEYS = ("train_dataloader", "val_dataloader", "test_dataloader")


def dataset_classes(table: Any, path: str) -> tuple[str, ...] | None:
    """The class names a dataset table will have, or ``None`` when only its data can tell.

    :param table: a dataset table (``{"type": ..., ...}``).
    :param path: its dotted config path, for messages.
    :raises ConfigError: ``classes`` is not a list of strings, or the type is unknown.
    """
    if not isinstance(table, dict):
        return None
    if "classes" in table:
        classes = table["classes"]
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise ConfigError(f"{path}.classes: expected a list of class names, got {classes!r}")
        return tuple(classes)
    name = table.get("type")
    if not isinstance(name, str):
        return None
    from core.plugins import get_registries

    factory = get_registries()["dataset"].get(name, f"{path}.type").factory
    fixed = getattr(factory, "CLASSES", None)
    if fixed:
        return tuple(fixed)
    try:
        parameter = inspect.signature(factory).parameters.get("classes")
    except (TypeError, ValueError):
        return None
    if parameter is None or parameter.default in (inspect.Parameter.empty, None):
        return None
    return tuple(parameter.default)


def _known_classes(cfg: dict[str, Any]) -> list[tuple[str, Sequence[str]]]:
    found = []
    for key in DATASET_KEYS:
        loader = cfg.get(key)
        if isinstance(loader, dict) and "dataset" in loader:
            path = f"{key}.dataset"
            classes = dataset_classes(loader["dataset"], path)
            if classes is not None:
                found.append((path, classes))
    return found


def resolve_num_classes(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` with ``model.head.num_classes`` taken from the datasets' classes.

    Left out of ``[model.head]``, the count is set to the number of classes of the first of
    :data:`DATASET_KEYS` whose classes are known; given, it must equal that number. Configs
    without a ``[model.head]`` table, or without any dataset table, are returned unchanged.

    :returns: a copy of ``cfg`` (``cfg`` itself is not modified).
    :raises ConfigError: the count differs from a dataset's classes (naming both keys and
        both numbers), or it is left out and no dataset's classes are known without its data.
    """
    model = cfg.get("model")
    head = model.get("head") if isinstance(model, dict) else None
    if not isinstance(head, dict):
        return cfg
    known = _known_classes(cfg)
    count = head.get("num_classes")
    if count is None:
        if not any(isinstance(cfg.get(key), dict) and "dataset" in cfg[key]
                   for key in DATASET_KEYS):
            return cfg  # a model alone (model_info, tests): the head's own default
        if not known:
            raise ConfigError(
                "model.head.num_classes: not set, and the classes of the datasets are only "
                f"known from their data; set it or the classes of one of {list(DATASET_KEYS)}"
            )
        _, classes = known[0]
        resolved = copy.deepcopy(cfg)
        resolved["model"]["head"]["num_classes"] = len(classes)
        return resolved
    if isinstance(count, bool) or not isinstance(count, int):
        return cfg  # the head's registry names the wrong type
    for path, classes in known:
        if count != len(classes):
            raise ConfigError(
                f"model.head.num_classes = {count} but {path} has {len(classes)} classes "
                f"({', '.join(classes)}); leave model.head.num_classes out to follow the dataset"
            )
    return cfg
