"""Defaults are written once: in the component's signature.

A component table given as a parameter default (a head's ``assigner`` default, ...) names the
``type`` and only what differs from that component's own signature defaults; everything else
comes from the signature when the config is completed or the part is built.

The shipped configs and their bases (``core/configs``, ``plugins/*/plugdet_*/configs``) write
only values that differ from what the full config (``--print-config``) fills in, and every
default they leave out can still be changed with ``--set``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
import tomli_w
import tomllib

from core.config import (
    BASE_KEY,
    DELETE_KEY,
    apply_override,
    config_files,
    merge,
    read_config,
    resolve_references,
)
from core.engine.builders import DEFAULT_HOOKS
from core.engine.class_count import count_keys
from core.engine.full_config import COMPONENT_LOCATIONS, complete_config, full_form
from core.errors import ConfigError
from core.plugins import get_registries
from core.registry import Registries, default_value, join_path


def normalized(value: Any) -> Any:
    """``value`` as a config holds it: tuples are lists, tables compare key by key."""
    if isinstance(value, list | tuple):
        return [normalized(item) for item in value]
    if isinstance(value, Mapping):
        return {key: normalized(item) for key, item in value.items()}
    return value


def same_value(left: Any, right: Any) -> bool:
    """Equal as config values (``True`` is not ``1``; ``1`` and ``1.0`` are equal)."""
    left, right = normalized(left), normalized(right)
    return left == right and isinstance(left, bool) == isinstance(right, bool)


def signature_defaults(regs: Registries, stage: str, name: str) -> dict[str, Any]:
    """The defaults of component ``name`` of ``stage``, by parameter (required ones left out)."""
    fields = attrs.fields(regs[stage].get(name).config_class)
    defaults = {field.name: default_value(field) for field in fields}
    return {key: value for key, value in defaults.items() if value is not attrs.NOTHING}


def table_defaults(regs: Registries) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """``(where, stage, table)`` for every parameter default that is a component table."""
    for stage in regs.stages:
        for entry in regs[stage]:
            for field in attrs.fields(entry.config_class):
                ref = field.metadata.get("component")
                default = default_value(field)
                if ref is not None and isinstance(default, Mapping) and "type" in default:
                    yield f"{stage} {entry.name}.{field.name}", ref.stage, default


def repeated_defaults(regs: Registries, stage: str, table: Mapping[str, Any]) -> list[str]:
    """Keys of ``table`` (a component table) whose value is its component's signature
    default."""
    defaults = signature_defaults(regs, stage, table["type"])
    return [key for key, value in table.items()
            if key != "type" and key in defaults and same_value(value, defaults[key])]


def test_default_tables_name_only_what_differs_from_the_signature() -> None:
    regs = get_registries()
    found = list(table_defaults(regs))
    assert len(found) > 20  # the heads' parts, at least
    repeated = [f"{where}: {', '.join(keys)}" for where, stage, table in found
                if (keys := repeated_defaults(regs, stage, table))]
    assert not repeated, (
        "default tables repeat their component's signature defaults (keep 'type' and what "
        "differs):\n  " + "\n  ".join(repeated)
    )


ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIRS = (ROOT / "core/configs", *sorted(ROOT.glob("plugins/*/plugdet_*/configs")))
#: The shipped configs (not the bases), by file name.
SHIPPED = {path.stem: path for folder in CONFIG_DIRS for path in sorted(folder.rglob("*.toml"))
           if "_base_" not in path.relative_to(folder).parts}


@attrs.frozen
class Written:
    """A value a config file writes inside a component table.

    :ivar key: its dotted path in the config.
    :ivar default: what the full form holds there when no file writes the key
        (``attrs.NOTHING``: nothing, or what the datasets' data says).
    :ivar source: where ``default`` comes from (``TaskAlignedAssigner.topk``).
    :ivar earlier: the value of the files merged before this one (``attrs.NOTHING``: none).
    """

    key: str
    value: Any
    default: Any
    source: str
    earlier: Any = attrs.NOTHING

    @property
    def fallback(self) -> Any:
        """What the full form holds there when this file leaves the key out."""
        return self.default if self.earlier is attrs.NOTHING else self.earlier

    @property
    def repeats_default(self) -> bool:
        """The full form has this value without the key, and it is the default."""
        return identical(self.value, self.fallback) and identical(self.value, self.default)


def identical(left: Any, right: Any) -> bool:
    """Equal with the same types (``1`` is not ``1.0``), as the full config compares them."""
    left, right = normalized(left), normalized(right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(identical, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(identical(left[k], right[k]) for k in left)
    return type(left) is type(right) and left == right


def inner(earlier: Any, key: str | int, value: Any) -> Any:
    """The part of ``earlier`` (the files merged before) under ``key`` that ``value`` merges
    into: none when ``value`` replaces it (``_delete_``)."""
    if not isinstance(earlier, Mapping) or (isinstance(value, Mapping) and value.get(DELETE_KEY)):
        return None
    return earlier.get(key)


def component_values(regs: Registries, stage: str, written: Any, merged: Any, earlier: Any,
                     path: str, default_table: Any = None, default_type: Any = None,
                     supplied: tuple[str, ...] = ()) -> Iterator[Written]:
    """The values ``written`` (one file's part of a component table) sets, each with its
    fallback. ``merged`` is the table in the merged config (it names the type), ``earlier``
    the table as the files merged before the file leave it."""
    if not isinstance(written, Mapping) or not isinstance(merged, Mapping):
        return
    if isinstance(default_table, Mapping) and "type" in default_table:
        default_type = default_table["type"]
    name = merged.get("type", default_type)
    if not isinstance(name, str) or name not in regs[stage]:
        return
    fields = {field.name: field for field in attrs.fields(regs[stage].get(name).config_class)}
    inherited = default_table if (isinstance(default_table, Mapping)
                                  and default_table.get("type") == name) else {}
    for key, value in written.items():
        where = join_path(path, key)
        field = fields.get(key)
        if key != "type" and (field is None or key in supplied):
            continue  # the registry reports an unknown key; supplied ones are never filled
        ref = field.metadata.get("component") if field is not None else None
        if ref is not None and isinstance(value, Mapping):
            yield from component_values(regs, ref.stage, value, merged.get(key),
                                        inner(earlier, key, value), where, default_value(field))
        elif (ref is not None and isinstance(value, list) and value == merged.get(key)
              and not identical(value, default_value(field))):
            for index, item in enumerate(value):
                yield from component_values(regs, ref.stage, item, item, None,
                                            join_path(where, index))
        else:
            if key == "type":
                default, source = default_type or attrs.NOTHING, f"the type at {path}"
            else:
                default = inherited[key] if key in inherited else default_value(field)
                source = f"{name}.{key}"
            before = earlier if isinstance(earlier, Mapping) else {}
            yield Written(where, value, default, source, before.get(key, attrs.NOTHING))


def location_values(regs: Registries, key: str, written: Any, merged: Any, earlier: Any
                    ) -> Iterator[Written]:
    """:func:`component_values` of the component tables under the top-level ``key``."""
    where = COMPONENT_LOCATIONS[key]
    earlier = inner({key: earlier}, key, written)
    if where.shape == "dataset" and isinstance(written, Mapping) and isinstance(merged, Mapping):
        table = written.get("dataset")
        yield from component_values(regs, where.stage, table, merged.get("dataset"),
                                    inner(earlier, "dataset", table), f"{key}.dataset")
    elif where.shape == "tables" and isinstance(written, Mapping) and isinstance(merged, Mapping):
        for name, table in written.items():
            yield from component_values(regs, where.stage, table, merged.get(name),
                                        inner(earlier, name, table), f"{key}.{name}",
                                        default_type=DEFAULT_HOOKS.get(name))
    elif isinstance(written, list) and written == merged:  # a list is replaced, not merged
        for index, table in enumerate(written):
            yield from component_values(regs, where.stage, table, table, None,
                                        join_path(key, index), supplied=where.supplied)
    elif isinstance(written, Mapping):
        yield from component_values(regs, where.stage, written, merged, earlier, key,
                                    supplied=where.supplied)


def class_count(regs: Registries, merged: dict[str, Any], key: str) -> Any:
    """What the full form of ``merged`` holds as ``key``'s class count when no file writes
    it: the datasets' classes, or nothing when only their data knows them."""
    config = copy.deepcopy(merged)
    config["model"][key.split(".", 1)[1]].pop("num_classes", None)
    try:
        full = full_form(config, regs, counts_from_data=True)
    except ConfigError:
        return attrs.NOTHING
    return full["model"][key.split(".", 1)[1]].get("num_classes", attrs.NOTHING)


class ConfigFiles:
    """The config files under the configs folders, read once."""

    def __init__(self) -> None:
        self.paths = sorted(path for folder in CONFIG_DIRS for path in folder.rglob("*.toml"))
        self._tables: dict[Path, dict[str, Any]] = {}
        self._merged: dict[Path, dict[str, Any]] = {}

    def table(self, path: Path) -> dict[str, Any]:
        """The file's own tables (``_base_`` left out)."""
        if path not in self._tables:
            with path.open("rb") as file:
                self._tables[path] = {k: v for k, v in tomllib.load(file).items()
                                      if k != BASE_KEY}
        return self._tables[path]

    def merged(self, path: Path) -> dict[str, Any]:
        """The config at ``path`` with its bases merged."""
        if path not in self._merged:
            self._merged[path] = read_config(path)
        return self._merged[path]

    def contexts(self) -> dict[Path, list[Path]]:
        """Every file -> itself and the configs based on it."""
        contexts: dict[Path, list[Path]] = {path: [path] for path in self.paths}
        for path in self.paths:
            for base in config_files(path)[:-1]:
                contexts.setdefault(base, [base]).append(path)
        return contexts

    def written_values(self, regs: Registries, path: Path, context: Path) -> Iterator[Written]:
        """The values the file ``path`` writes in component tables, with their fallbacks in
        the config ``context`` (``path`` or a config based on it)."""
        files = config_files(context)
        earlier: dict[str, Any] = {}
        for before in files[:files.index(path.resolve())]:
            earlier = merge(earlier, self.table(before))
        merged = self.merged(context)
        counts = {f"{key}.num_classes" for key in count_keys(merged)}
        written = self.table(path)
        for key in COMPONENT_LOCATIONS:
            if key not in written:
                continue
            for value in location_values(regs, key, written[key], merged.get(key),
                                         earlier.get(key)):
                if value.key in counts:
                    head = value.key.rsplit(".", 1)[0]
                    value = attrs.evolve(value, default=class_count(regs, merged, head),
                                         source=f"the classes of the datasets of {head}")
                yield value


def test_config_files_write_no_value_the_full_config_fills_in() -> None:
    regs = get_registries()
    files = ConfigFiles()
    contexts = files.contexts()
    assert len(contexts) > 30
    same: dict[tuple[Path, str], list[bool]] = {}
    found: dict[tuple[Path, str], Written] = {}
    for path, configs in contexts.items():
        for context in configs:
            for value in files.written_values(regs, path, context):
                found[path, value.key] = value
                same.setdefault((path, value.key), []).append(value.repeats_default)
    assert len(found) > 300
    repeated = [f"{path.relative_to(ROOT)}: {key} = {found[path, key].value!r} is the "
                f"default ({found[path, key].source})" for (path, key), verdicts in same.items()
                if all(verdicts)]
    assert not repeated, (
        "config files write values the full config fills in from the components' defaults "
        "(leave them out; --print-config shows them):\n  " + "\n  ".join(repeated))


def test_the_default_check_sees_written_defaults_and_needed_values(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text(
        '[model]\ntype = "YOLODetector"\n[model.backbone]\ntype = "YOLOv8CSPDarknet"\n'
        '[model.neck]\ntype = "YOLOv8PAFPN"\n[model.head]\ntype = "YOLOv8Head"\n'
        'reg_max = 16\nwiden_factor = 0.5\n'
        '[model.head.assigner]\ntype = "TaskAlignedAssigner"\ntopk = 13\n')
    config = tmp_path / "config.toml"
    config.write_text('_base_ = "base.toml"\n[model.head]\nwiden_factor = 0.5\n'
                      '[model.head.assigner]\ntopk = 10\nalpha = 0.5\n')
    regs, files = get_registries(), ConfigFiles()
    base = {v.key: v for v in files.written_values(regs, tmp_path / "base.toml", config)}
    assert {key for key, v in base.items() if v.repeats_default} == {
        "model.head.reg_max", "model.head.assigner.type"}
    assert base["model.head.reg_max"].source == "YOLOv8Head.reg_max"
    mine = {v.key: v for v in files.written_values(regs, config, config)}
    # topk = 10 is the default but undoes the base's 13; widen_factor repeats the base's
    # value, which is not the default: both stay
    assert {key for key, v in mine.items() if v.repeats_default} == {"model.head.assigner.alpha"}
    assert identical(mine["model.head.widen_factor"].fallback, 0.5)


def leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every value in ``value`` that is not a table (list items
    that are tables by index: ``pipeline.1.scale``; a table with a dotted key as one value)."""
    if isinstance(value, Mapping) and not any("." in key for key in value):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}")
    elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        for index, item in enumerate(value):
            yield from leaves(item, f"{path}.{index}")
    else:
        yield path, value


def lookup(config: Any, key: str) -> Any:
    """The value at the dotted ``key`` of ``config``, or ``attrs.NOTHING``."""
    for part in key.split("."):
        if isinstance(config, list) and part.isdigit() and int(part) < len(config):
            config = config[int(part)]
        elif isinstance(config, Mapping) and part in config:
            config = config[part]
        else:
            return attrs.NOTHING
    return config


@pytest.mark.parametrize("name", list(SHIPPED))
def test_every_default_the_config_leaves_out_can_be_set(name: str) -> None:
    """``--set`` (without ``--set-new``) takes every key of the full form, also one that only
    a component's default provides; setting each to its value changes nothing."""
    regs = get_registries()
    raw = read_config(SHIPPED[name])
    full = full_form(raw, regs, counts_from_data=True)
    reference = complete_config(resolve_references(raw), regs)
    changed = copy.deepcopy(raw)
    defaults_only = [(key, value) for location in COMPONENT_LOCATIONS if location in full
                     for key, value in leaves(full[location], location)
                     if lookup(raw, key) is attrs.NOTHING]
    for key, value in defaults_only:
        apply_override(changed, f"{key}={toml_literal(value)}", reference=reference)
    assert len(defaults_only) > 50  # the shipped configs leave most defaults out
    assert full_form(changed, regs, counts_from_data=True) == full


def toml_literal(value: Any) -> str:
    """``value`` as an override writes it (``'"auto"'``, ``"[8, 16]"``, ``"true"``)."""
    return tomli_w.dumps({"v": value}).partition("=")[2].strip()
