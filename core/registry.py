"""Typed registries: one per stage, building components from config tables.

A component's config is its factory's signature. ``Registry.build`` looks up the table's
``type``, turns the factory's keyword parameters and type hints into an attrs class, structures
the rest of the table into it with a strict cattrs converter (unknown keys and wrong types are
errors naming the dotted key path), builds nested components declared with
``Annotated[T, component("stage")]`` first, and finally calls the factory.
"""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any

import attrs
import cattrs

from core.errors import ConfigError, PlugdetError, PluginError
from core.hookspecs import STAGES


@attrs.frozen
class ComponentRef:
    """Marks a constructor parameter as a nested component of ``stage`` built from a table."""

    stage: str


def component(stage: str) -> ComponentRef:
    """The ``Annotated`` marker for a nested component: ``Annotated[nn.Module, component("neck")]``.

    The config gives a table with ``type`` (or a list of tables when the hint is a ``list``);
    the factory receives the built object(s). ``None`` stays ``None``.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    return ComponentRef(stage)


@attrs.frozen
class Origin:
    """Where a component comes from: the plugin and its distribution."""

    plugin: str
    distribution: str
    version: str


@attrs.frozen
class Entry:
    """A registered component."""

    name: str
    stage: str
    factory: Callable[..., Any]
    origin: Origin

    @functools.cached_property
    def config_class(self) -> type:
        """The attrs class describing this component's config table."""
        return config_class_for(self.factory, self.name)


class StrictTypeError(TypeError):
    """A config value has the wrong type (``expected int, got 'fifty'``)."""


def _component_ref(hint: Any) -> tuple[ComponentRef | None, bool]:
    """Return the component marker of an ``Annotated`` hint and whether it expects a list."""
    if _is_union(hint):  # ``Optional[Annotated[...]]`` as some Pythons report a None default
        inner_hints = [h for h in typing.get_args(hint) if h is not type(None)]
        if len(inner_hints) == 1:
            hint = inner_hints[0]
    if typing.get_origin(hint) is not Annotated:
        return None, False
    ref = next((m for m in hint.__metadata__ if isinstance(m, ComponentRef)), None)
    inner = typing.get_args(hint)[0]
    is_list = typing.get_origin(inner) in (list, tuple) or any(
        typing.get_origin(arg) in (list, tuple) for arg in typing.get_args(inner)
    )
    return ref, is_list


def config_class_for(factory: Callable[..., Any], name: str) -> type:
    """Derive the attrs config class of ``factory`` from its keyword parameters and hints.

    An attrs class is its own config class. Parameters without a hint accept any value.
    ``*args``/``**kwargs`` are refused: every config key must be declared.
    """
    if attrs.has(factory):
        return factory  # type: ignore[return-value]
    target = factory.__init__ if inspect.isclass(factory) else factory  # type: ignore[misc]
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception as exc:  # an unresolvable forward reference in a plugin's signature
        raise PluginError(f"component {name!r}: cannot resolve its type hints: {exc}") from exc
    fields: dict[str, Any] = {}
    for param in inspect.signature(factory).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise PluginError(
                f"component {name!r}: parameter {param.name!r} must be a named keyword "
                "parameter (no *args, **kwargs or positional-only) to be configurable"
            )
        hint = hints.get(param.name, Any)
        ref, is_list = _component_ref(hint)
        field_type = Any if ref is not None else hint
        if param.default is inspect.Parameter.empty:
            default: Any = attrs.NOTHING
        elif isinstance(param.default, (dict, list)):
            default = attrs.Factory(functools.partial(copy.deepcopy, param.default))
        else:
            default = param.default
        fields[param.name] = attrs.field(
            type=field_type,
            default=default,
            metadata={"component": ref, "is_list": is_list},
        )
    return attrs.make_class(f"{name}Config", fields, kw_only=True)


def _strict(kind: type, accepts: tuple[type, ...]) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _: Any) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise StrictTypeError(f"expected {kind.__name__}, got {value!r}")
        if not isinstance(value, accepts):
            raise StrictTypeError(f"expected {kind.__name__}, got {value!r}")
        return kind(value)

    return structure


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(int, _strict(int, (int,)))
    converter.register_structure_hook(float, _strict(float, (int, float)))
    converter.register_structure_hook(str, _strict(str, (str,)))
    converter.register_structure_hook(bool, _strict(bool, (bool,)))

    def structure_union(value: Any, hint: Any) -> Any:
        members = typing.get_args(hint)
        if value is None and type(None) in members:
            return None
        errors = []
        for member in members:
            if member is type(None):
                continue
            try:
                return converter.structure(value, member)
            except Exception as exc:  # try the next member of the union
                errors.append(exc)
        names = " | ".join(getattr(m, "__name__", repr(m)) for m in members)
        raise StrictTypeError(f"expected {names}, got {value!r}")

    converter.register_structure_hook_func(_is_union, structure_union)
    return converter


CONVERTER = _make_converter()


def _format_structure_error(exc: BaseException, hint: type | None) -> str:
    if isinstance(exc, StrictTypeError):
        return str(exc)
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        allowed = ", ".join(field.name for field in attrs.fields(exc.cl))
        return f"unknown key(s) {', '.join(sorted(exc.extra_fields))}; allowed keys: {allowed}"
    if isinstance(exc, KeyError):
        return "required key missing"
    if typing.get_origin(hint) is typing.Literal:
        choices = ", ".join(repr(choice) for choice in typing.get_args(hint))
        return f"expected one of {choices}"
    return cattrs.v.format_exception(exc, hint)


def structure_errors(exc: BaseException, path: str) -> list[str]:
    """Turn a cattrs structuring error into ``"dotted.path: problem"`` lines."""
    lines = []
    for line in cattrs.transform_error(exc, path=path, format_exception=_format_structure_error):
        message, _, where = line.rpartition(" @ ")
        lines.append(f"{where}: {message}")
    return lines


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Registry:
    """Components of one stage, by name."""

    def __init__(self, stage: str, group: Registries) -> None:
        self.stage = stage
        self._group = group
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, factory: Callable[..., Any], origin: Origin) -> None:
        """Record ``factory`` under ``name``; a second plugin using the name is an error."""
        if not isinstance(name, str) or not name:
            raise PluginError(
                f"plugin {origin.plugin!r} ({origin.distribution}): {self.stage} names must be "
                f"non-empty strings, got {name!r}"
            )
        if not callable(factory):
            raise PluginError(
                f"plugin {origin.plugin!r} ({origin.distribution}): {self.stage} {name!r} is "
                f"not callable: {factory!r}"
            )
        if name in self._entries:
            first = self._entries[name].origin
            raise PluginError(
                f"{self.stage} {name!r} is registered twice: by {first.distribution} "
                f"{first.version} (plugin {first.plugin!r}) and by {origin.distribution} "
                f"{origin.version} (plugin {origin.plugin!r})"
            )
        self._entries[name] = Entry(name, self.stage, factory, origin)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries[name] for name in self.names())

    def get(self, name: str, path: str = "type") -> Entry:
        """The entry called ``name``; an unknown name raises with the closest names."""
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"{path}: {self._group.explain_unknown(self.stage, name)}") from None

    def build(self, cfg: Mapping[str, Any] | Any, path: str = "") -> Any:
        """Build a component from ``cfg`` (a table with ``type``); other objects pass through.

        :param cfg: ``{"type": NAME, **keyword arguments}``.
        :param path: dotted config path of ``cfg``, used in error messages.
        """
        if not isinstance(cfg, Mapping):
            return cfg
        where = path or self.stage
        if "type" not in cfg:
            raise ConfigError(
                f"{where}: missing key 'type' (a {self.stage}: one of {', '.join(self.names())})"
            )
        name = cfg["type"]
        if not isinstance(name, str):
            raise ConfigError(f"{_join(path, 'type')}: expected str, got {name!r}")
        entry = self.get(name, _join(path, "type"))
        kwargs = {key: value for key, value in cfg.items() if key != "type"}
        config_class = entry.config_class
        try:
            structured = CONVERTER.structure(kwargs, config_class)
        except Exception as exc:  # cattrs reports every problem at once
            problems = "; ".join(structure_errors(exc, where))
            raise ConfigError(f"{problems} ({self.stage} {name!r})") from None
        if config_class is entry.factory:
            return structured
        values = {}
        for field in attrs.fields(config_class):
            value = getattr(structured, field.name)
            ref = field.metadata.get("component")
            if ref is not None:
                value = self._group.build_nested(ref.stage, value, _join(where, field.name))
            values[field.name] = value
        try:
            return entry.factory(**values)
        except ConfigError:  # a nested build: its message already holds the full path
            raise
        except PlugdetError as exc:  # a missing data file, ...: keep the type, add the key
            raise type(exc)(f"{where}: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {self.stage} {name!r}: {exc}") from exc


class Registries(Mapping[str, Registry]):
    """The registries of every stage, plus what is known about plugins that failed to load."""

    def __init__(self) -> None:
        self._by_stage = {stage: Registry(stage, self) for stage in STAGES}
        self.failed_plugins: list[str] = []
        #: ``variable -> plugins it left out`` (``PLUGDET_PLUGINS``, ``PLUGDET_DISABLE_PLUGINS``)
        self.left_out_plugins: dict[str, list[str]] = {}

    def __getitem__(self, stage: str) -> Registry:
        try:
            return self._by_stage[stage]
        except KeyError:
            raise KeyError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_stage)

    def __len__(self) -> int:
        return len(self._by_stage)

    def build(self, stage: str, cfg: Mapping[str, Any] | Any, path: str = "") -> Any:
        """Build a component of ``stage`` from ``cfg`` (see :meth:`Registry.build`)."""
        return self[stage].build(cfg, path)

    def build_nested(self, stage: str, value: Any, path: str) -> Any:
        """Build a nested component value: a table, a list of tables, an object or ``None``."""
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            return [self.build(stage, item, _join(path, i)) for i, item in enumerate(value)]
        if isinstance(value, Mapping):
            return self.build(stage, value, path)
        return value

    def explain_unknown(self, stage: str, name: str) -> str:
        """A message for an unknown ``name`` in ``stage``: closest names and their origin."""
        registry = self[stage]
        known = {entry.name: entry for entry in registry}
        lowered = {n.lower(): n for n in known}
        close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
        if name.lower() in lowered and lowered[name.lower()] not in close:
            close.insert(0, lowered[name.lower()])
        message = f"unknown {stage} {name!r}"
        if close:
            hints = ", ".join(f"{n!r} (from {known[n].origin.distribution})" for n in close)
            message += f"; did you mean {hints}?"
        else:
            message += f"; registered {stage}s: {', '.join(known) or 'none'}"
        elsewhere = [s for s in STAGES if s != stage and name in self._by_stage[s]]
        if elsewhere:
            origin = self._by_stage[elsewhere[0]].get(name).origin.distribution
            message += f" ({name!r} is a {elsewhere[0]} from {origin}, not a {stage})"
        if self.failed_plugins:
            message += (
                f"; plugins that failed to load might provide it: {', '.join(self.failed_plugins)}"
                " (see `python -m core.plugins`)"
            )
        for variable, names in self.left_out_plugins.items():
            message += f"; left out by {variable}: {', '.join(names)}"
        return message
