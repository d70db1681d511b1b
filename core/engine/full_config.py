"""The full form of a config: every component table with its defaults filled in.

Defaults live in one place, the component's signature; this module writes them into the
config so that ``--print-config`` and the run's saved ``config.toml`` show what will run, and
so that ``--set`` can change any of them (``--set model.head.assigner.type=ATSSAssigner``)
without ``--set-new``. A default of ``None`` cannot be written in TOML and stays implicit.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from core.config import apply_override, read_config, resolve_references
from core.registry import Registries, default_value, join_path, merge_with_default


@attrs.frozen
class Location:
    """Where a config holds component tables.

    :ivar stage: the components' stage.
    :ivar shape: "table" (one component table), "list" (a list of them), "table or list",
        "dataset" (a loader table whose ``dataset`` key is one) or "tables" (a table of them).
    :ivar supplied: parameters the engine passes at build time (left out of the full form).
    """

    stage: str
    shape: str
    supplied: tuple[str, ...] = ()


#: Top-level key -> what it holds.
COMPONENT_LOCATIONS: dict[str, Location] = {
    "model": Location("detector", "table"),
    "train_dataloader": Location("dataset", "dataset"),
    "val_dataloader": Location("dataset", "dataset"),
    "test_dataloader": Location("dataset", "dataset"),
    "val_evaluator": Location("metric", "table or list"),
    "test_evaluator": Location("metric", "table or list"),
    "default_hooks": Location("hook", "tables"),
    "custom_hooks": Location("hook", "list"),
    "vis_backends": Location("vis_backend", "list", supplied=("save_dir",)),
}


def _toml_value(value: Any) -> tuple[bool, Any]:
    """``(representable, value)``: tuples become lists; ``None`` and objects are not TOML."""
    if isinstance(value, bool | int | float | str):
        return True, value
    if isinstance(value, list | tuple):
        items = [_toml_value(v) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if isinstance(value, Mapping):
        pairs = {k: _toml_value(v) for k, v in value.items()}
        return True, {k: v for k, (ok, v) in pairs.items() if ok}
    return False, value


def complete_component(regs: Registries, stage: str, table: Any, path: str,
                       supplied: tuple[str, ...] = ()) -> Any:
    """``table`` with every default of its component filled in, recursively, except the
    ``supplied`` parameters.

    Anything but a table with a ``type`` is returned unchanged (the registry reports it).
    """
    if not isinstance(table, Mapping) or not isinstance(table.get("type"), str):
        return table
    entry = regs[stage].get(table["type"], join_path(path, "type"))
    full = dict(table)
    for field in attrs.fields(entry.config_class):
        if field.name in table:
            value = table[field.name]
        else:
            value = default_value(field)
            if value is attrs.NOTHING or value is None or field.name in supplied:
                continue
        ref = field.metadata.get("component")
        if ref is not None:
            value = _complete_nested(regs, ref.stage, merge_with_default(value, field),
                                     join_path(path, field.name))
        representable, value = _toml_value(value)
        if representable or field.name in table:
            full[field.name] = value
    return full


def _complete_nested(regs: Registries, stage: str, value: Any, path: str,
                     supplied: tuple[str, ...] = ()) -> Any:
    if isinstance(value, list | tuple):
        return [complete_component(regs, stage, item, join_path(path, i), supplied)
                for i, item in enumerate(value)]
    return complete_component(regs, stage, value, path, supplied)


def _complete_location(regs: Registries, key: str, value: Any, default_hooks: Mapping[str, str]
                       ) -> Any:
    where = COMPONENT_LOCATIONS[key]
    stage, shape = where.stage, where.shape
    if shape == "dataset" and isinstance(value, Mapping) and "dataset" in value:
        dataset = complete_component(regs, stage, value["dataset"], f"{key}.dataset")
        return {**value, "dataset": dataset}
    if shape == "tables" and isinstance(value, Mapping):
        completed = {}
        for name, table in value.items():
            if isinstance(table, Mapping) and "type" not in table and name in default_hooks:
                table = {"type": default_hooks[name], **table}
            completed[name] = complete_component(regs, stage, table, f"{key}.{name}")
        return completed
    if shape in ("list", "table or list") and isinstance(value, list):
        return _complete_nested(regs, stage, value, key, where.supplied)
    if shape in ("table", "table or list"):
        return complete_component(regs, stage, value, key, where.supplied)
    return value


def complete_config(config: Mapping[str, Any], regs: Registries) -> dict[str, Any]:
    """A copy of ``config`` whose component tables carry every default (see the module doc).

    Building from the result gives the same components as building from ``config``.
    """
    from core.engine.builders import DEFAULT_HOOKS

    full = copy.deepcopy(dict(config))
    for key in COMPONENT_LOCATIONS:
        if key in full:
            full[key] = _complete_location(regs, key, full[key], DEFAULT_HOOKS)
    return full


def full_form(config: dict[str, Any], regs: Registries, counts_from_data: bool = False
              ) -> dict[str, Any]:
    """References resolved, the heads' class counts taken from the datasets' classes and
    checked against them, every default filled in: what a run builds from.

    :param counts_from_data: a class count left out that only the datasets' data can give
        (a ``YoloDataset``'s names, a ``CocoDataset``'s categories) stays out, for the run
        to take from the built datasets; without it, that is a ConfigError.
    """
    from core.engine.class_count import counts_left_to_data, resolve_num_classes

    resolved = resolve_num_classes(resolve_references(config), counts_from_data)
    full = complete_config(resolved, regs)
    for key in counts_left_to_data(resolved):  # not the head's default: the data decides
        full["model"][key.split(".", 1)[1]].pop("num_classes", None)
    return full


def resolve_config(config: dict[str, Any], overrides: Iterable[str], regs: Registries,
                   allow_new: bool = False, counts_from_data: bool = False) -> dict[str, Any]:
    """Apply ``--set`` overrides to a config as read (references unresolved), then return its
    :func:`full_form`.

    An override may name any key of the full form: a table the config does not write yet is
    created with the default's ``type``, so a default is changed without ``--set-new``.
    Changing a ``type`` brings in the new component's defaults. The class counts are checked
    once, on the result: an override may change a count and the classes, in either order.
    """
    raw = copy.deepcopy(config)
    for override in overrides:
        reference = complete_config(resolve_references(raw), regs)
        apply_override(raw, override, allow_new=allow_new, reference=reference)
    return full_form(raw, regs, counts_from_data)


def load_full_config(path: str, overrides: Iterable[str] = (), allow_new: bool = False,
                     counts_from_data: bool = False) -> dict[str, Any]:
    """The config at ``path`` with ``overrides`` applied, in its :func:`full_form`: what
    ``--print-config`` prints, what a run saves as ``config.toml`` and what every tool
    builds from (``counts_from_data``: see :func:`full_form`)."""
    from core.plugins import get_registries

    return resolve_config(read_config(path), overrides, get_registries(), allow_new=allow_new,
                          counts_from_data=counts_from_data)
