"""Defaults are written once: in the component's signature.

A component table given as a parameter default (a head's ``assigner`` default, ...) names the
``type`` and only what differs from that component's own signature defaults; everything else
comes from the signature when the config is completed or the part is built.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from core.plugins import get_registries
from core.registry import Registries, default_value


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

