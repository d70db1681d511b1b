"""``${dotted.key}`` references in config strings: resolving them, and writing resolved text
back so that it reads the same.

Each referenced key is resolved once and reused, and what references produce is counted as it
is produced: a config whose references would expand past :data:`MAX_REFERENCE_VALUES` values
or :data:`MAX_REFERENCE_CHARS` characters (nested references multiplying, a "billion laughs")
is refused before anything that large is built.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from core.errors import ConfigError

#: ``${key}``, or ``$${key}`` (a literal ``${key}``).
REFERENCE = re.compile(r"\$(\$?)\{([^{}]*)\}")
#: A ``${`` that reading would take for a reference (it is followed by ``...}``).
_READ_AS_REFERENCE = re.compile(r"\$\{(?=[^{}]*\})")
#: The most values (tables, lists and scalars, counted expanded) references may produce.
MAX_REFERENCE_VALUES = 100_000
#: The most string characters references may produce.
MAX_REFERENCE_CHARS = 10_000_000

#: A resolved value with its expanded size: (value, values, characters).
_Sized = tuple[Any, int, int]


def resolve_references(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with every ``${dotted.key}`` reference in strings replaced.

    ``"${a.b}"`` alone takes the value of ``a.b`` (any type, itself resolved first); inside a
    longer string the value (a string, int or float) is inserted as text; ``$${`` is a
    literal ``${``. List items are addressed by index (``${a.0}``).

    :raises ConfigError: naming the key holding the reference, for a missing key, a cycle,
        a table/list/bool inserted into a longer string, or references expanding past
        :data:`MAX_REFERENCE_VALUES` values or :data:`MAX_REFERENCE_CHARS` characters.
    """
    resolved, _, _ = _Resolver(config).walk(config, "", ())
    unshared: dict[str, Any] = _unshared(resolved)
    return unshared


def escape_references(node: Any) -> Any:
    """``node`` (a resolved config or value) with every ``${`` that reading would take for a
    reference written ``$${``, so that reading it again gives the same text."""
    if isinstance(node, dict):
        return {key: escape_references(value) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [escape_references(value) for value in node]
    if isinstance(node, str):
        return _READ_AS_REFERENCE.sub("$${", node)
    return node


class _Resolver:
    """One resolution of a config: resolved keys are kept for reuse, and the values and
    characters that references produce are counted against the limits."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.resolved: dict[str, _Sized] = {}
        self.values = 0
        self.chars = 0

    def walk(self, node: Any, path: str, chain: tuple[str, ...]) -> _Sized:
        """``node`` (found at ``path``) resolved, with its expanded size."""
        if path in self.resolved:
            return self.resolved[path]
        if isinstance(node, dict | list):
            items = node.items() if isinstance(node, dict) else enumerate(node)
            parts = {key: self.walk(value, f"{path}.{key}" if path else str(key), chain)
                     for key, value in items}
            values = 1 + sum(size for _, size, _ in parts.values())
            chars = sum(size for _, _, size in parts.values())
            if isinstance(node, dict):
                return {key: value for key, (value, _, _) in parts.items()}, values, chars
            return [value for value, _, _ in parts.values()], values, chars
        if isinstance(node, str):
            if "${" in node:
                return self.substitute(node, path, chain or (path,))
            return node, 1, len(node)
        return node, 1, 0

    def lookup(self, target: str, holder: str, chain: tuple[str, ...]) -> _Sized:
        """The value of key ``target``, referred to by ``holder``, resolved once."""
        if holder.startswith(target + "."):
            raise ConfigError(f"{holder}: reference ${{{target}}} names a table holding it")
        if target in self.resolved:
            return self.resolved[target]
        if target in chain:
            cycle = " -> ".join((*chain, target))
            raise ConfigError(f"{holder}: reference cycle: {cycle}")
        node: Any = self.config
        for depth, part in enumerate(target.split(".")):
            where = ".".join(target.split(".")[: depth + 1])
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise ConfigError(f"{holder}: reference ${{{target}}}: no key {where!r} in the "
                                  "config")
        self.resolved[target] = self.walk(node, target, (*chain, target))
        return self.resolved[target]

    def substitute(self, text: str, holder: str, chain: tuple[str, ...]) -> _Sized:
        """The string ``text`` at key ``holder`` with its references replaced."""
        whole = REFERENCE.fullmatch(text)
        if whole and not whole.group(1):
            target = whole.group(2).strip()
            value, values, chars = self.lookup(target, holder, chain)
            self.produce(holder, target, values, chars)
            return value, values, chars

        def replace(match: re.Match[str]) -> str:
            if match.group(1):
                return "${" + match.group(2) + "}"
            target = match.group(2).strip()
            value, _, _ = self.lookup(target, holder, chain)
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ConfigError(f"{holder}: reference ${{{match.group(2)}}} inside a string "
                                  f"must name a string or number, got {value!r}")
            inserted = str(value)
            self.produce(holder, target, 0, len(inserted))
            return inserted

        result = REFERENCE.sub(replace, text)
        return result, 1, len(result)

    def produce(self, holder: str, target: str, values: int, chars: int) -> None:
        """Count what ``${target}`` at ``holder`` produces; refuse it past a limit."""
        self.values += values
        self.chars += chars
        for unit, produced, limit in (("values", self.values, MAX_REFERENCE_VALUES),
                                      ("characters", self.chars, MAX_REFERENCE_CHARS)):
            if produced > limit:
                raise ConfigError(
                    f"{holder}: reference ${{{target}}}: the config's references expand past "
                    f"{limit:,} {unit} (a reference bomb?); references may produce at most "
                    f"{limit:,} {unit} in all")


def _unshared(node: Any) -> Any:
    """``node`` with every table and list its own (a reused resolved value appears once per
    reference)."""
    if isinstance(node, dict):
        return {key: _unshared(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_unshared(value) for value in node]
    return copy.deepcopy(node)
