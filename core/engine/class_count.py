"""The heads' class counts follow the datasets' classes.

A head whose component takes ``num_classes`` (``model.head``, ``model.roi_head``, ...) has a
*count key*. Left out of the config, the count is the number of the datasets' classes; given,
it must equal it. The datasets' classes are known in two ways:

* from the config, without building the dataset (which may generate or parse a large amount
  of data): the table's ``classes`` key, else the dataset class's ``CLASSES`` attribute, else
  the default of its ``classes`` parameter (:func:`dataset_classes`). The final config is
  checked against them (:func:`resolve_num_classes`), once, after every ``--set``;
* from the data (a ``YoloDataset``'s YAML ``names``, a ``CocoDataset``'s categories): the
  built dataset's ``classes``, checked by :func:`count_from_datasets` before the model is
  built, so before any training.

A mismatch is a :class:`~core.errors.ConfigError` of one line naming the count key, both
counts and the dataset key, with the ``--set`` that matches the data.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from core.errors import ConfigError

#: Dataset tables looked at, in this order: the first with known classes sets the count.
DATASET_KEYS = ("train_dataloader", "val_dataloader", "test_dataloader")
#: Class names shown in a message before the list is cut short.
SHOWN_NAMES = 8


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


def count_keys(cfg: Mapping[str, Any]) -> list[str]:
    """Dotted keys (``"model.head"``, ``"model.roi_head"``) of the model's tables naming a
    head component that takes ``num_classes``; a table of an unknown type is left to the
    registry to report when the model is built."""
    model = cfg.get("model")
    if not isinstance(model, dict):
        return []
    from core.plugins import get_registries

    heads = get_registries()["head"]
    keys = []
    for key, table in model.items():
        if not isinstance(table, dict) or table.get("type") not in heads:
            continue
        fields = attrs.fields(heads.get(table["type"]).config_class)
        if any(field.name == "num_classes" for field in fields):
            keys.append(f"model.{key}")
    return keys


def _head(cfg: Mapping[str, Any], key: str) -> dict[str, Any]:
    return cfg["model"][key.split(".", 1)[1]]


def _dataset_tables(cfg: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [(f"{key}.dataset", cfg[key]["dataset"]) for key in DATASET_KEYS
            if isinstance(cfg.get(key), dict) and "dataset" in cfg[key]]


def _classes(classes: Sequence[str], from_data: bool) -> str:
    """``"3 classes (cat, dog, bird)"``: the count and the first names."""
    shown = ", ".join(classes[:SHOWN_NAMES]) + (", ..." if len(classes) > SHOWN_NAMES else "")
    plural = "" if len(classes) == 1 else "es"
    return f"{len(classes)} class{plural} ({shown}{'; from its data' if from_data else ''})"


def _check(key: str, count: Any, origin: str | None, path: str, classes: Sequence[str],
           from_data: bool) -> None:
    """Raise unless ``count`` (written, or taken from the dataset ``origin``) matches."""
    if isinstance(count, bool) or not isinstance(count, int) or count == len(classes):
        return  # a count of the wrong type is reported by the head's registry
    if origin is not None:
        raise ConfigError(
            f"{path} has {_classes(classes, from_data)} but {origin} "
            f"has {count}: {key}.num_classes, taken from {origin}, cannot match both; "
            "give the datasets the same classes")
    raise ConfigError(
        f"{key}.num_classes = {count} but {path} has {_classes(classes, from_data)}; "
        f"--set {key}.num_classes={len(classes)} matches it, or leave {key}.num_classes out "
        "to take the count from the dataset")


def _settle(cfg: dict[str, Any], sources: list[tuple[str, Sequence[str], bool]]
            ) -> dict[str, Any]:
    """``cfg`` with each count key left out set from the first of ``sources`` and every
    count checked against all of them (``(dataset key, classes, from its data)``)."""
    resolved = cfg
    for key in count_keys(cfg):
        count = _head(cfg, key).get("num_classes")
        origin = None
        if count is None and sources:
            origin, classes, _ = sources[0]
            count = len(classes)
            if resolved is cfg:
                resolved = copy.deepcopy(cfg)
            _head(resolved, key)["num_classes"] = count
        for path, classes, from_data in sources:
            _check(key, count, origin, path, classes, from_data)
    return resolved


def resolve_num_classes(cfg: dict[str, Any], counts_from_data: bool = False) -> dict[str, Any]:
    """``cfg`` with the count keys left out taken from the datasets' classes known from the
    config, and every given count checked against them.

    Configs without a count key, or without any dataset table, are returned unchanged.

    :param counts_from_data: a count left out that only the datasets' data can give stays
        out (a run takes it from the built datasets, see :func:`count_from_datasets`);
        without it, that is an error.
    :returns: ``cfg``, or a copy of it with counts set (``cfg`` itself is not modified).
    :raises ConfigError: a count differs from a dataset's classes (naming both keys and
        both numbers), or it is left out and no dataset's classes are known without its
        data (unless ``counts_from_data``).
    """
    tables = _dataset_tables(cfg)
    known = [(path, classes, False) for path, table in tables
             if (classes := dataset_classes(table, path)) is not None]
    resolved = _settle(cfg, known)
    missing = counts_left_to_data(resolved)
    if missing and not counts_from_data:
        path, table = tables[0]
        raise ConfigError(
            f"{missing[0]}.num_classes: not set, and {path} takes its classes from its data "
            f"({table.get('type')}), which this command does not read; "
            f"--set {missing[0]}.num_classes=N gives the count")
    return resolved


def counts_left_to_data(cfg: dict[str, Any]) -> list[str]:
    """The count keys that :func:`resolve_num_classes` with ``counts_from_data`` left out of
    ``cfg``: a run takes them from its built datasets (empty without dataset tables, where a
    head keeps its own default)."""
    if not _dataset_tables(cfg):
        return []
    return [key for key in count_keys(cfg) if _head(cfg, key).get("num_classes") is None]


def count_from_datasets(cfg: dict[str, Any], classes: Mapping[str, Sequence[str]]
                        ) -> dict[str, Any]:
    """``cfg`` checked against the classes of its built datasets (before its model is built).

    :param classes: dataset key (``"train_dataloader.dataset"``) -> the built dataset's
        ``classes``, in the order of :data:`DATASET_KEYS`; a dataset without class names
        (an empty ``classes``) is not compared.
    :returns: ``cfg``, or a copy with the count keys left out set from the first dataset.
    :raises ConfigError: a count differs from a dataset's classes.
    """
    listed = dict(_dataset_tables(cfg))
    sources = [(path, tuple(names), dataset_classes(listed.get(path), path) is None)
               for path, names in classes.items() if names]
    return _settle(cfg, sources)
