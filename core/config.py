"""TOML configs: nothing in a config can execute code.

* ``_base_ = ["../_base_/runtime.toml", "core::configs/_base_/x.toml"]`` inherits from other
  files, depth first; later files win and tables merge recursively. A path is relative to the
  file naming it, or ``package::path`` inside an installed Python package (its import name,
  or the name of the distribution that installs it).
* ``_delete_ = true`` inside a table replaces the inherited table instead of merging into it.
* Overrides ``a.b.c=VALUE`` are parsed as TOML literals (bare words are strings); unknown keys
  are rejected unless new keys are allowed.
* References ``"${a.b}"`` in string values are looked up in the merged config after the
  overrides (see :func:`resolve_references`): a string that is one whole reference takes the
  referenced value with its type (``classes = "${data.classes}"`` is a list), a reference
  inside a longer string is replaced by the value's text (``"${data.root}/images"``). ``$${``
  writes a literal ``${`` (and :func:`dump_config` writes it back so). This is a lookup of keys
  and nothing else, and what references produce is limited in size.
"""

from __future__ import annotations

import copy
import difflib
import sys
from collections.abc import Iterable
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import tomli_w

from core.config_references import escape_references, resolve_references
from core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

BASE_KEY = "_base_"
DELETE_KEY = "_delete_"
PACKAGE_SEPARATOR = "::"


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


def config_files(path: str | Path) -> list[Path]:
    """The files the config at ``path`` is merged from, each once, bases before the files
    naming them (``path`` last)."""
    return list(dict.fromkeys(_files_with_bases(Path(path).resolve(), ())))


def _files_with_bases(path: Path, chain: tuple[Path, ...]) -> list[Path]:
    files = []
    for entry in _base_entries(_read_toml(path), path):
        files += _files_with_bases(_resolve_base(entry, path, chain), (*chain, path))
    return [*files, path]


def _base_entries(data: dict[str, Any], path: Path) -> list[Any]:
    """The ``_base_`` entries of the file ``path`` read as ``data`` (taken out of it)."""
    bases = data.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list):
        raise ConfigError(f"{path}: {BASE_KEY} must be a string or a list of strings")
    return bases


def _resolve_base(entry: Any, owner: Path, chain: tuple[Path, ...]) -> Path:
    if not isinstance(entry, str):
        raise ConfigError(f"{owner}: {BASE_KEY} entries must be strings, got {entry!r}")
    package, separator, inner = entry.partition(PACKAGE_SEPARATOR)
    if separator:
        path = _package_file(package, inner, f"{owner}: {BASE_KEY} entry {entry!r}")
    else:
        path = (owner.parent / entry).resolve()
    if path in chain or path == owner:
        cycle = " -> ".join(str(p) for p in (*chain, owner, path))
        raise ConfigError(f"{owner}: {BASE_KEY} cycle: {cycle}")
    if not path.is_file():
        via = " -> ".join(str(p) for p in (*chain, owner))
        raise ConfigError(f"{owner}: {BASE_KEY} entry {entry!r} not found ({path}); chain: {via}")
    return path


def _package_file(package: str, inner: str, where: str) -> Path:
    """``inner`` inside the installed import package ``package``, or inside an import package
    of the installed distribution named ``package`` (``plugdet-yolo`` for ``plugdet_yolo``)."""
    try:
        return Path(str(resources.files(package).joinpath(inner)))
    except (ModuleNotFoundError, TypeError, ValueError):
        pass
    roots = []
    for name in _import_packages(package):
        try:
            roots.append(resources.files(name))
        except (ModuleNotFoundError, TypeError):
            continue
    if not roots:
        raise ConfigError(f"{where}: package {package!r} is not installed")
    found = [root.joinpath(inner) for root in roots if root.joinpath(inner).is_file()]
    return Path(str(found[0] if found else roots[0].joinpath(inner)))


def _import_packages(distribution: str) -> list[str]:
    """The top-level import packages of the installed distribution ``distribution`` (its
    ``top_level.txt``, its plugdet entry points, its files); none if it is not installed."""
    try:
        dist = metadata.distribution(distribution)
    except (metadata.PackageNotFoundError, ValueError):
        return []
    names = (dist.read_text("top_level.txt") or "").split()
    names += [entry.module.partition(".")[0] for entry in dist.entry_points
              if entry.group == "plugdet"]
    names += [file.parts[0] for file in dist.files or ()
              if len(file.parts) == 2 and file.name == "__init__.py"]
    return [name for name in dict.fromkeys(names) if name.isidentifier()]


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
    merged: dict[str, Any] = {}
    for entry in _base_entries(data, path):
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
    """The resolved config as TOML text that loads back to an equal dict: a literal ``${`` in
    a string is written ``$${`` so that it is not read as a reference."""
    return tomli_w.dumps(escape_references(config))


def save_config(config: dict[str, Any], path: str | Path) -> None:
    """Write the config as TOML to ``path``."""
    Path(path).write_text(dump_config(config), encoding="utf-8")
