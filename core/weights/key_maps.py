"""Key tables: another framework's parameter names against plugdet's, written as data.

A table maps a prefix of the source's names to a prefix of plugdet's and is applied by the
longest matching prefix (:func:`map_key`); it reads in both directions
(:func:`inverted_table` gives the source's name of a plugdet name).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

Value = TypeVar("Value")


def indexed_prefixes(source: str, target: str, count: int, step: int = 1, offset: int = 0
                     ) -> dict[str, str]:
    """``{source.format(i): target.format(step * i + offset)}`` for ``i < count``: the
    entries of ``count`` numbered layers (e.g. ``"neck.fpn_convs.{}.conv."`` ->
    ``"neck.fpn_convs.{}."``)."""
    return {source.format(i): target.format(step * i + offset) for i in range(count)}


def map_key(key: str, table: Mapping[str, str]) -> str | None:
    """``key`` with its longest prefix in ``table`` replaced by the prefix's value; None
    when no prefix matches."""
    best = max((prefix for prefix in table if key.startswith(prefix)), key=len, default=None)
    return None if best is None else table[best] + key[len(best):]


def inverted_table(table: Mapping[str, str]) -> dict[str, str]:
    """The table read the other way (plugdet's prefixes -> the source's)."""
    return {ours: theirs for theirs, ours in table.items()}


def rename_keys(state: Mapping[str, Value], table: Mapping[str, str]) -> dict[str, Value]:
    """Every key of ``state`` renamed by ``table`` (:func:`map_key`), values as they are.

    :raises KeyError: naming the keys no prefix matches."""
    renamed = {key: map_key(key, table) for key in state}
    unmatched = sorted(key for key, new in renamed.items() if new is None)
    if unmatched:
        raise KeyError(f"no counterpart for {unmatched}")
    return {new: state[key] for key, new in renamed.items() if new is not None}
