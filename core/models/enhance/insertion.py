"""Placing enhance layers into a network by config: parsing and building.

A placement is one table of a network's ``plugins`` list::

    {cfg = {type = "ContextBlock", ratio = 0.0625},
     stages = [false, true, true, true], position = "after_conv3"}

``cfg`` is an ``enhance`` component without ``in_channels`` (the network sets it from the
place the layer goes to); the flags (``stages`` in backbones, ``levels`` in necks) say where it
is inserted, ``position`` where inside that stage or level.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs
from torch import nn

from core.errors import ConfigError
from core.registry import current_build_path, join_path

ENHANCE_STAGE = "enhance"
CHANNELS_KEY = "in_channels"
PLACEMENT_KEYS = ("cfg", "position")


@attrs.frozen
class Placement:
    """A parsed ``plugins`` entry: the layer's table, where (one flag per stage or level) and
    at which position; ``path`` is its config key for error messages."""

    cfg: Mapping[str, Any]
    flags: tuple[bool, ...]
    position: str
    path: str

    def applies(self, index: int, position: str) -> bool:
        """Whether this layer goes into stage or level ``index`` at ``position``."""
        return self.position == position and self.flags[index]


def parse_flags(value: Any, key: str, count: int) -> tuple[bool, ...]:
    """Check a list of ``count`` booleans (``stage_with_dcn``, ``plugins[i].stages``).

    :raises ConfigError: naming ``key`` when ``value`` is not ``count`` booleans.
    """
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ConfigError(f"{key}: expected a list of {count} booleans, got {value!r}")
    if len(value) != count:
        raise ConfigError(f"{key}: expected {count} values, got {len(value)}")
    if not all(isinstance(flag, bool) for flag in value):
        raise ConfigError(f"{key}: expected booleans, got {list(value)}")
    return tuple(value)


def parse_placements(
    plugins: Sequence[Mapping[str, Any]] | None,
    counts: Mapping[str, int],
    *,
    flags_key: str = "stages",
    key: str = "plugins",
) -> list[Placement]:
    """Validate a ``plugins`` list.

    :param counts: allowed ``position`` -> number of flags expected with it.
    :param flags_key: name of the flags key; when absent, the layer goes everywhere.
    :raises ConfigError: naming the bad key, e.g. ``plugins[0].stages: expected 4 values, got 3``.
    """
    placements = []
    for index, entry in enumerate(plugins or ()):
        path = f"{key}[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{path}: expected a table with cfg and position, got {entry!r}")
        allowed = (*PLACEMENT_KEYS, flags_key)
        unknown = sorted(set(entry) - set(allowed))
        if unknown:
            raise ConfigError(
                f"{path}: unknown key(s) {', '.join(unknown)}; allowed keys: {', '.join(allowed)}"
            )
        missing = [k for k in PLACEMENT_KEYS if k not in entry]
        if missing:
            raise ConfigError(f"{path}.{missing[0]}: required key missing")
        cfg, position = entry["cfg"], entry["position"]
        if position not in counts:
            raise ConfigError(
                f"{path}.position: expected one of {', '.join(map(repr, counts))}, got {position!r}"
            )
        if not isinstance(cfg, Mapping) or "type" not in cfg:
            raise ConfigError(f"{path}.cfg: expected a table with 'type', got {cfg!r}")
        if CHANNELS_KEY in cfg:
            raise ConfigError(
                f"{path}.cfg.{CHANNELS_KEY}: set by the network from the insertion point; remove it"
            )
        count = counts[position]
        flags = entry.get(flags_key, [True] * count)
        placements.append(
            Placement(dict(cfg), parse_flags(flags, f"{path}.{flags_key}", count), position, path)
        )
    return placements


def build_enhance(cfg: Mapping[str, Any], in_channels: int, path: str, **fixed: Any) -> nn.Module:
    """Build an ``enhance`` component from ``cfg`` for an input of ``in_channels`` channels.

    :param fixed: further arguments set by the network (e.g. a DCN's stride); giving them in
        ``cfg`` is an error.
    :raises ConfigError: on an unknown type or bad arguments, naming ``path``.
    """
    from core.plugins import get_registries  # the registries are filled by this package

    for name in (CHANNELS_KEY, *fixed):
        if name in cfg:
            raise ConfigError(f"{path}.{name}: set by the network from the insertion point")
    where = join_path(current_build_path(), path)  # e.g. model.backbone.plugins[0].cfg
    layer: nn.Module = get_registries().build(
        ENHANCE_STAGE, {**cfg, CHANNELS_KEY: in_channels, **fixed}, where)
    return layer


def modules_outside(root: nn.Module, excluded: Sequence[nn.Module]) -> Iterator[nn.Module]:
    """``root`` and its submodules, skipping the subtrees of ``excluded`` (layers that
    initialise themselves, which a network's own weight initialisation must not overwrite)."""
    skip = {id(module) for module in excluded}
    stack = [root]
    while stack:
        module = stack.pop()
        if id(module) in skip:
            continue
        yield module
        stack.extend(reversed(list(module.children())))
