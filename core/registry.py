"""Typed registries: one per stage, building components from config tables.

A component's config is its factory's signature. ``Registry.build`` looks up the table's
``type``, turns the factory's keyword parameters and type hints into an attrs class, structures
the rest of the table into it with a strict cattrs converter (unknown keys and wrong types are
errors naming the dotted key path), builds nested components declared with
``Annotated[T, component("stage")]`` first, and finally calls the factory.

A class that takes a fixed set of parts declares them once as a ``TypedDict`` and takes
``**parts: Unpack[ThatDict]``: each key is a keyword parameter, its default the class's
``part_defaults[key]`` (a key without one is required).
"""

from __future__ import annotations

import contextvars
import copy
import difflib
import functools
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any, Unpack

import attrs
import cattrs

from core.contracts import missing_members
from core.errors import ConfigError, ContractError, PlugdetError, PluginError
from core.hookspecs import BUILTIN_STAGES, Register, StageSpec

#: Dotted config path of the component being built (for parts a component builds itself).
_BUILD_PATH: contextvars.ContextVar[str] = contextvars.ContextVar("build_path", default="")
#: A message that starts with a key (``"num_classes: ..."``) gets the table path joined to it.
_KEY_PREFIX = re.compile(r"^[A-Za-z_][\w.\[\]]*:")


@attrs.frozen
class ComponentRef:
    """Marks a constructor parameter as a nested component of ``stage`` built from a table."""

    stage: str


def component(stage: str) -> ComponentRef:
    """The ``Annotated`` marker for a nested component: ``Annotated[nn.Module, component("neck")]``.

    The config gives a table with ``type`` (or a list of tables when the hint is a ``list``);
    the factory receives the built object(s). ``None`` stays ``None``. The stage may be one a
    plugin declares; it is looked up when the component is built.
    """
    if not stage.isidentifier():
        raise ValueError(f"stage names are identifiers, got {stage!r}")
    return ComponentRef(stage)


def register_each(register: Register, *classes: type, **named: Callable[..., Any]) -> None:
    """Record each of ``classes`` under its class name and each of ``named`` under its keyword,
    through the ``register`` a ``register_<stage>s`` hook receives:
    ``register_each(register, SPP, CBAM, SE=SELayer)``."""
    for cls in classes:
        register(cls.__name__, cls)
    for name, factory in named.items():
        register(name, factory)


def current_build_path() -> str:
    """Dotted config path of the component whose factory is running ("" outside a build)."""
    return _BUILD_PATH.get()


def join_path(path: str, key: str | int) -> str:
    """``path.key`` (or ``path[key]`` for list positions); ``key`` alone at the top."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class LocatedConfigError(ConfigError):
    """A config error whose message already starts with its full dotted path."""


def locate(message: str, path: str) -> str:
    """Put ``path`` in front of a component's own message (``num_classes: ...`` becomes
    ``model.head.num_classes: ...``)."""
    if not path:
        return message
    if _KEY_PREFIX.match(message):
        return f"{path}.{message}"
    return f"{path}: {message}"


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


def _returned_class(factory: Callable[..., Any]) -> type | None:
    """The class a factory builds: itself, or a function's return annotation when it is a
    class; None when only the built object can tell."""
    if inspect.isclass(factory):
        return factory
    try:
        returned = typing.get_type_hints(factory).get("return")
    except Exception:  # an unresolvable annotation: check the built object instead
        return None
    return returned if inspect.isclass(returned) else None


def default_value(field: attrs.Attribute[Any]) -> Any:
    """A config field's default (a fresh copy for tables and lists), or ``attrs.NOTHING``."""
    default = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        return default.factory()  # type: ignore[union-attr]
    return default


def merge_with_default(value: Any, field: attrs.Attribute[Any]) -> Any:
    """A nested component table that names no other ``type`` than the field's default table
    updates that table (as config inheritance merges tables); any other value replaces it."""
    default = default_value(field)
    if not (isinstance(value, Mapping) and isinstance(default, Mapping) and "type" in default):
        return value
    if value.get("type", default["type"]) != default["type"]:
        return value
    return {**default, **value}


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


def _declared_parameters(factory: Callable[..., Any], name: str, hints: Mapping[str, Any]
                         ) -> Iterator[tuple[str, Any, Any]]:
    """``(name, hint, default)`` of every keyword parameter of ``factory`` (default
    ``inspect.Parameter.empty`` when required), the keys of an ``**parts: Unpack[...]``
    included."""
    part_defaults: Mapping[str, Any] = getattr(factory, "part_defaults", {})
    for param in inspect.signature(factory).parameters.values():
        hint = hints.get(param.name, Any)
        if param.kind is param.VAR_KEYWORD and typing.get_origin(hint) is Unpack:
            declared = typing.get_type_hints(typing.get_args(hint)[0], include_extras=True)
            unknown = sorted(set(part_defaults) - set(declared))
            if unknown:
                raise PluginError(f"component {name!r}: part_defaults names {unknown}, which "
                                  f"are not among its parts {sorted(declared)}")
            for key, key_hint in declared.items():
                yield key, key_hint, part_defaults.get(key, inspect.Parameter.empty)
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise PluginError(
                f"component {name!r}: parameter {param.name!r} must be a named keyword "
                "parameter (no *args, **kwargs or positional-only) to be configurable"
            )
        yield param.name, hint, param.default


def config_class_for(factory: Callable[..., Any], name: str) -> type:
    """Derive the attrs config class of ``factory`` from its keyword parameters and hints.

    An attrs class is its own config class. Parameters without a hint accept any value.
    ``*args``/``**kwargs`` are refused: every config key must be declared (``**parts:
    Unpack[SomeTypedDict]`` declares the dict's keys).
    """
    if isinstance(factory, type) and attrs.has(factory):
        return factory
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception as exc:  # an unresolvable forward reference in a plugin's signature
        raise PluginError(f"component {name!r}: cannot resolve its type hints: {exc}") from exc
    fields: dict[str, Any] = {}
    for key, hint, param_default in _declared_parameters(factory, name, hints):
        ref, is_list = _component_ref(hint)
        field_type = Any if ref is not None else hint
        if param_default is inspect.Parameter.empty:
            default: Any = attrs.NOTHING
        elif isinstance(param_default, (dict, list)):
            default = attrs.Factory(functools.partial(copy.deepcopy, param_default))
        else:
            default = param_default
        fields[key] = attrs.field(
            type=field_type,
            default=default,
            metadata={"component": ref, "is_list": is_list, "hint": hint},
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


class Registry:
    """Components of one stage, by name, each checked against the stage's contract."""

    def __init__(self, spec: StageSpec, group: Registries) -> None:
        self.spec = spec
        self.stage = spec.name
        self._group = group
        self._entries: dict[str, Entry] = {}

    def _check_contract(self, name: str, candidate: object, origin: Origin) -> None:
        """Raise when ``candidate`` (a factory class or a built component) lacks a member."""
        contract = self.spec.contract
        if contract is None:
            return
        missing = missing_members(contract, candidate)
        if missing:
            raise ContractError(
                f"{self.stage} {name!r} from {origin.distribution} {origin.version} (plugin "
                f"{origin.plugin!r}) does not satisfy core.contracts.{contract.__name__}: "
                f"missing {', '.join(missing)}"
            )

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
        returned = _returned_class(factory)
        if returned is not None:
            self._check_contract(name, returned, origin)
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
            raise LocatedConfigError(
                f"{path}: {self._group.explain_unknown(self.stage, name)}"
            ) from None

    def build(self, cfg: Mapping[str, Any] | Any, path: str = "") -> Any:
        """Build a component from ``cfg`` (a table with ``type``); other objects pass through.

        :param cfg: ``{"type": NAME, **keyword arguments}``.
        :param path: dotted config path of ``cfg``, used in error messages.
        """
        if not isinstance(cfg, Mapping):
            return cfg
        where = path or self.stage
        if "type" not in cfg:
            raise LocatedConfigError(
                f"{where}: missing key 'type' (a {self.stage}: one of {', '.join(self.names())})"
            )
        name = cfg["type"]
        if not isinstance(name, str):
            raise LocatedConfigError(f"{join_path(path, 'type')}: expected str, got {name!r}")
        entry = self.get(name, join_path(path, "type"))
        kwargs = {key: value for key, value in cfg.items() if key != "type"}
        config_class = entry.config_class
        try:
            structured: Any = CONVERTER.structure(kwargs, config_class)
        except Exception as exc:  # cattrs reports every problem at once
            problems = "; ".join(structure_errors(exc, where))
            raise LocatedConfigError(f"{problems} ({self.stage} {name!r})") from None
        if config_class is entry.factory:
            return structured
        values = {}
        for field in attrs.fields(config_class):
            value = getattr(structured, field.name)
            ref = field.metadata.get("component")
            if ref is not None:
                value = self._group.build_nested(
                    ref.stage, merge_with_default(value, field), join_path(where, field.name)
                )
            values[field.name] = value
        token = _BUILD_PATH.set(where)
        try:
            built = entry.factory(**values)
        except LocatedConfigError:  # a nested build: its message already holds the full path
            raise
        except ConfigError as exc:  # the component's own message: add where its table is
            raise LocatedConfigError(locate(str(exc), where)) from exc
        except PlugdetError as exc:  # a missing data file, ...: keep the type, add the key
            raise type(exc)(f"{where}: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise LocatedConfigError(f"{where}: {self.stage} {name!r}: {exc}") from exc
        finally:
            _BUILD_PATH.reset(token)
        if _returned_class(entry.factory) is None:  # a function: check what it returned
            self._check_contract(name, built, entry.origin)
        return built


class Registries(Mapping[str, Registry]):
    """The registries of every stage, plus what is known about plugins that failed to load."""

    def __init__(self, stages: Mapping[str, StageSpec] = BUILTIN_STAGES) -> None:
        self._by_stage = {name: Registry(spec, self) for name, spec in stages.items()}
        self.failed_plugins: list[str] = []
        #: ``variable -> plugins it left out`` (``PLUGDET_PLUGINS``, ``PLUGDET_DISABLE_PLUGINS``)
        self.left_out_plugins: dict[str, list[str]] = {}

    def add_stage(self, spec: StageSpec) -> Registry:
        """A registry for a stage a plugin declares."""
        if spec.name in self._by_stage:
            raise PluginError(f"stage {spec.name!r} is declared twice")
        registry = self._by_stage[spec.name] = Registry(spec, self)
        return registry

    @property
    def stages(self) -> tuple[str, ...]:
        """Every stage, built-in then declared."""
        return tuple(self._by_stage)

    def __getitem__(self, stage: str) -> Registry:
        try:
            return self._by_stage[stage]
        except KeyError:
            raise ConfigError(
                f"unknown stage {stage!r}; stages are {', '.join(self._by_stage)} (a plugin "
                "may declare more: see `python -m core.plugins`)"
            ) from None

    def __contains__(self, stage: object) -> bool:
        return stage in self._by_stage

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
            return [self.build(stage, item, join_path(path, i)) for i, item in enumerate(value)]
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
        elsewhere = [s for s in self._by_stage if s != stage and name in self._by_stage[s]]
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
