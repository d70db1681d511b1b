"""TOML configs: nothing in a config can execute code.

* ``_base_ = ["../_base_/runtime.toml", "core::configs/_base_/x.toml"]`` inherits from other
  files, depth first; later files win and tables merge recursively. A path is relative to the
  file naming it, or ``package::path`` inside an installed Python package.
* ``_delete_ = true`` inside a table replaces the inherited table instead of merging into it.
* Overrides ``a.b.c=VALUE`` are parsed as TOML literals (bare words are strings); unknown keys
  are rejected unless new keys are allowed.
* References ``"${a.b}"`` in string values are looked up in the merged config after the
  overrides (see :func:`resolve_references`): a string that is one whole reference takes the
  referenced value with its type (``classes = "${data.classes}"`` is a list), a reference
  inside a longer string is replaced by the value's text (``"${data.root}/images"``). ``$${``
  writes a literal ``${``. This is a lookup of keys and nothing else.
"""

from __future__ import annotations

import copy
import difflib
import re
import sys
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w

from core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

BASE_KEY = "_base_"
DELETE_KEY = "_delete_"
PACKAGE_SEPARATOR = "::"
REFERENCE = re.compile(r"\$(\$?)\{([^{}]*)\}")


def load_config(
    path: str | Path, overrides: Iterable[str] = (), allow_new: bool = False
) -> dict[str, Any]:
    """Read ``path`` with its bases merged, ``overrides`` (``"a.b=VALUE"``) applied and
    references resolved."""
    config = read_config(path)
    for override in overrides:
        apply_override(config, override, allow_new=allow_new)
    return resolve_references(config)


def read_config(path: str | Path) -> dict[str, Any]:
    """``path`` with its bases merged, references left as they are written."""
    return _load_with_bases(Path(path).resolve(), ())


def resolve_references(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with every ``${dotted.key}`` reference in strings replaced.

    ``"${a.b}"`` alone takes the value of ``a.b`` (any type, itself resolved first); inside a
    longer string the value (a string, int or float) is inserted as text; ``$${`` is a
    literal ``${``. List items are addressed by index (``${a.0}``).

    :raises ConfigError: naming the key holding the reference, for a missing key, a cycle or
        a table/list/bool inserted into a longer string.
    """
    def lookup(target: str, holder: str, chain: tuple[str, ...]) -> Any:
        if holder.startswith(target + "."):
            raise ConfigError(f"{holder}: reference ${{{target}}} names a table holding it")
        if target in chain:
            cycle = " -> ".join((*chain, target))
            raise ConfigError(f"{holder}: reference cycle: {cycle}")
        node: Any = config
        for depth, part in enumerate(target.split(".")):
            where = ".".join(target.split(".")[: depth + 1])
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise ConfigError(f"{holder}: reference ${{{target}}}: no key {where!r} in the "
                                  "config")
        return walk(node, target, (*chain, target))

    def substitute(text: str, holder: str, chain: tuple[str, ...]) -> Any:
        whole = REFERENCE.fullmatch(text)
        if whole and not whole.group(1):
            return lookup(whole.group(2).strip(), holder, chain)

        def replace(match: re.Match[str]) -> str:
            if match.group(1):
                return "${" + match.group(2) + "}"
            value = lookup(match.group(2).strip(), holder, chain)
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ConfigError(f"{holder}: reference ${{{match.group(2)}}} inside a string "
                                  f"must name a string or number, got {value!r}")
            return str(value)

        return REFERENCE.sub(replace, text)

    def walk(node: Any, path: str, chain: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, f"{path}.{k}" if path else k, chain) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{path}.{i}", chain) for i, v in enumerate(node)]
        if isinstance(node, str) and "${" in node:
            return substitute(node, path, chain or (path,))
        return copy.deepcopy(node)

    return walk(config, "", ())


def _resolve_base(entry: Any, owner: Path, chain: tuple[Path, ...]) -> Path:
    if not isinstance(entry, str):
        raise ConfigError(f"{owner}: {BASE_KEY} entries must be strings, got {entry!r}")
    package, separator, inner = entry.partition(PACKAGE_SEPARATOR)
    if separator:
        try:
            root = resources.files(package)
        except ModuleNotFoundError:
            raise ConfigError(
                f"{owner}: {BASE_KEY} entry {entry!r}: package {package!r} is not installed"
            ) from None
        path = Path(str(root.joinpath(inner)))
    else:
        path = (owner.parent / entry).resolve()
    if path in chain or path == owner:
        cycle = " -> ".join(str(p) for p in (*chain, owner, path))
        raise ConfigError(f"{owner}: {BASE_KEY} cycle: {cycle}")
    if not path.is_file():
        via = " -> ".join(str(p) for p in (*chain, owner))
        raise ConfigError(f"{owner}: {BASE_KEY} entry {entry!r} not found ({path}); chain: {via}")
    return path


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _load_with_bases(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    data = _read_toml(path)
    bases = data.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list):
        raise ConfigError(f"{path}: {BASE_KEY} must be a string or a list of strings")
    merged: dict[str, Any] = {}
    for entry in bases:
        base_path = _resolve_base(entry, path, chain)
        merged = merge(merged, _load_with_bases(base_path, (*chain, path)), str(base_path))
    return merge(merged, data, str(path))


def merge(base: dict[str, Any], override: dict[str, Any], source: str = "") -> dict[str, Any]:
    """Merge ``override`` into a copy of ``base``: tables recursively, everything else replaced.

    A table of ``override`` holding ``_delete_ = true`` replaces the table of ``base``.
    """
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict):
            replace = value.get(DELETE_KEY, False)
            if not isinstance(replace, bool):
                raise ConfigError(f"{source}: {key}.{DELETE_KEY} must be true or false")
            clean = {k: v for k, v in value.items() if k != DELETE_KEY}
            if not replace and isinstance(result.get(key), dict):
                result[key] = merge(result[key], clean, source)
            else:
                result[key] = merge({}, clean, source)
        else:
            result[key] = copy.deepcopy(value)
    return result


def parse_value(text: str) -> Any:
    """Parse an override value as a TOML literal; a bare word is a string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        if text[:1] in "[{\"'" or not text.strip():
            raise ConfigError(f"cannot parse {text!r} as a TOML value") from None
        return text


def _split_key(key: str) -> list[str | int]:
    parts: list[str | int] = []
    for part in key.split("."):
        if not part:
            raise ConfigError(f"empty segment in key {key!r}")
        parts.append(int(part) if part.isdigit() else part)
    return parts


def apply_override(config: dict[str, Any], override: str, allow_new: bool = False,
                   reference: dict[str, Any] | None = None) -> None:
    """Apply ``"a.b.c=VALUE"`` to ``config`` in place (list items by index: ``a.0.b``).

    :param allow_new: accept keys that neither ``config`` nor ``reference`` has.
    :param reference: the full form of ``config`` (every default filled in): a key it has is
        known; a missing table on the way is created with the reference's ``type``.
    """
    key, separator, text = override.partition("=")
    if not separator:
        raise ConfigError(f"override {override!r} must look like KEY=VALUE")
    parts = _split_key(key.strip())
    node: Any = config
    known: Any = reference
    for depth, part in enumerate(parts):
        where = ".".join(str(p) for p in parts[: depth + 1])
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not isinstance(part, int) or not -len(node) <= part < len(node):
                raise ConfigError(f"override {where}: no item {part!r} in a list of {len(node)}")
        elif isinstance(node, dict):
            part = str(part)
            in_reference = isinstance(known, dict) and part in known
            if part not in node and not last:
                if not (in_reference or allow_new):
                    _unknown_key(where, node, known)
                default = known.get(part) if in_reference else None
                node[part] = {"type": default["type"]} if (
                    isinstance(default, dict) and "type" in default) else {}
            elif part not in node and not (in_reference or allow_new):
                _unknown_key(where, node, known)
        else:
            raise ConfigError(f"override {where}: the parent is a value, not a table")
        if last:
            node[part] = parse_value(text.strip())
        else:
            node = node[part]
            known = _child(known, part)


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
        return node[part]
    return None


def _unknown_key(where: str, node: dict[str, Any], known: Any) -> None:
    names = {str(k) for k in node} | ({str(k) for k in known} if isinstance(known, dict)
                                      else set())
    close = difflib.get_close_matches(where.rsplit(".", 1)[-1], sorted(names), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"override {where}: unknown key{hint}; use --set-new to add a key")


def dump_config(config: dict[str, Any]) -> str:
    """The config as TOML text that loads back to an equal dict."""
    return tomli_w.dumps(config)


def save_config(config: dict[str, Any], path: str | Path) -> None:
    """Write the config as TOML to ``path``."""
    Path(path).write_text(dump_config(config), encoding="utf-8")
