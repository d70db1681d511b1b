"""Plugin discovery: built-in plugins, then the ``plugdet`` entry-point group.

Built-in plugins are modules of the kernel; they go through exactly the same registration
path as third-party distributions. Environment variables:

* ``PLUGDET_DISABLE_PLUGINS=a,b``: do not load these plugins (entry-point, distribution or
  built-in module names);
* ``PLUGDET_PLUGINS=a,b``: load only these third-party plugins (built-ins still load).

A plugin that raises on import, or registers a component lacking a member of its stage's
contract, is recorded as a :class:`LoadFailure` (distribution, version, exception) and every
other plugin keeps working. A distribution whose dependency on
``plugdet`` excludes this kernel's version (the plugin API version,
:data:`core.contracts.PLUGIN_API_VERSION`, is the kernel's ``major.minor``) is listed as
incompatible, with both versions, and not imported. ``python -m core.plugins [--json]``
lists everything.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import attrs
import pluggy
from packaging.requirements import InvalidRequirement, Requirement

import core
from core import hookspecs
from core.contracts import PLUGIN_API_VERSION
from core.errors import ContractError, PluginError
from core.hookspecs import StageSpec
from core.registry import Origin, Registries, Registry

ENTRY_POINT_GROUP = "plugdet"
ENV_DISABLE = "PLUGDET_DISABLE_PLUGINS"
ENV_ONLY = "PLUGDET_PLUGINS"
KERNEL_DISTRIBUTION = "plugdet"
LOGGER = logging.getLogger("plugdet.plugins")

#: Modules of the kernel registered as plugins, in this order, before any third-party one.
BUILTIN_PLUGINS: tuple[str, ...] = ("core.visualization.plugin",
                                     "core.visualization.hooks.plugin", "core.models.plugin",
                                     "core.data.plugin", "core.evaluation.plugin",
                                     "core.engine.plugin")


@attrs.frozen
class PluginInfo:
    """A loaded plugin and what it registered (stage -> component names)."""

    name: str
    distribution: str
    version: str
    source: str
    components: dict[str, list[str]] = attrs.field(factory=dict)


@attrs.frozen
class Incompatible:
    """A plugin distribution written for another plugin API version; it is not imported.

    :ivar requirement: its dependency on the kernel, e.g. ``plugdet<0.2,>=0.1``.
    """

    name: str
    distribution: str
    version: str
    requirement: str

    def describe(self) -> str:
        """One line naming both versions."""
        return (f"{self.distribution} {self.version} [{self.name}] needs {self.requirement}; "
                f"this kernel is {KERNEL_DISTRIBUTION} {core.__version__} (plugin API "
                f"{PLUGIN_API_VERSION})")


def kernel_requirement(dist: metadata.Distribution | None) -> Requirement | None:
    """A distribution's dependency on the kernel, or None when it declares none."""
    for line in (dist.requires or []) if dist is not None else []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if _normalize(requirement.name) == KERNEL_DISTRIBUTION and requirement.marker is None:
            return requirement
    return None


@attrs.frozen
class LoadFailure:
    """A plugin that could not be loaded or whose registration hook raised."""

    name: str
    distribution: str
    version: str
    error: str
    traceback: str


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _name_set(value: str | None) -> set[str]:
    return {_normalize(n) for n in (value or "").split(",") if n.strip()}


class PluginManager:
    """Loads plugins and fills one :class:`~core.registry.Registries` from their hooks."""

    def __init__(
        self,
        builtins: tuple[str, ...] = BUILTIN_PLUGINS,
        use_entry_points: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self._builtins = builtins
        self._use_entry_points = use_entry_points
        self._disabled = _name_set(env.get(ENV_DISABLE))
        self._only = _name_set(env.get(ENV_ONLY)) or None
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._infos: dict[str, PluginInfo] = {}
        self.registries = Registries()
        self.failures: list[LoadFailure] = []
        self.incompatible: list[Incompatible] = []
        self.skipped: list[str] = []
        #: stage name -> distribution that declared it (plugin-declared stages only).
        self.declared_stages: dict[str, str] = {}

    @property
    def plugins(self) -> list[PluginInfo]:
        """Loaded plugins in registration order."""
        return list(self._infos.values())

    def load(self, extra: Mapping[str, object] | None = None) -> PluginManager:
        """Register built-ins, entry-point plugins and ``extra`` (name -> plugin object), then
        validate every hook implementation and fill the registries."""
        for module_name in self._builtins:
            if _normalize(module_name) in self._disabled:
                self.skipped.append(module_name)
                self._left_out(ENV_DISABLE, module_name)
                continue
            module = importlib.import_module(module_name)
            self.register(module, module_name, KERNEL_DISTRIBUTION, core.__version__, "built-in")
        if self._use_entry_points:
            self._load_entry_points()
        for name, plugin in (extra or {}).items():
            self.register(plugin, name, name, "0", "registered in code")
        self._declare_stages()
        self._check_pending()
        self._fill_registries()
        self._warn_unmatched_names()
        return self

    def _declare_stages(self) -> None:
        """Let plugins add stages, each with a registry and a ``register_<stage>s`` spec."""
        for hook_impl in self._pm.hook.declare_stages.get_hookimpls():
            info = self._infos[hook_impl.plugin_name]

            def declare(name: str, contract: type | None = None, doc: str = "",
                        _info: PluginInfo = info) -> None:
                if not name.isidentifier() or name in self.registries:
                    raise PluginError(
                        f"plugin {_info.name!r} ({_info.distribution}): cannot declare stage "
                        f"{name!r}: " + ("it exists already" if name in self.registries
                                         else "stage names are identifiers"))
                spec = StageSpec(name, hookspecs.hook_name_for(name), contract, doc)
                self._pm.add_hookspecs(hookspecs.spec_namespace(spec))
                self.registries.add_stage(spec)
                self.declared_stages[name] = _info.distribution

            hook_impl.function(declare=declare)

    def _left_out(self, variable: str, description: str) -> None:
        """Remember that ``variable`` kept a plugin from loading (for unknown-name errors)."""
        self.registries.left_out_plugins.setdefault(variable, []).append(description)

    def _warn_unmatched_names(self) -> None:
        """Warn about names in the filter variables that match no built-in or installed plugin."""
        known = {_normalize(name) for name in self._builtins}
        for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
            known.add(_normalize(entry_point.name))
            if entry_point.dist is not None:
                known.add(_normalize(entry_point.dist.metadata["Name"]))
        for variable, names in ((ENV_ONLY, self._only or set()), (ENV_DISABLE, self._disabled)):
            for name in sorted(names - known):
                LOGGER.warning("%s: %r matches no installed plugin (entry point or "
                               "distribution); see `python -m core.plugins`", variable, name)

    def register(
        self, plugin: object, name: str, distribution: str, version: str, source: str
    ) -> None:
        """Register one plugin object (module or instance with hook implementations)."""
        try:
            self._pm.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise PluginError(f"plugin {name!r} ({distribution} {version}): {exc}") from exc
        self._infos[name] = PluginInfo(name, distribution, version, source)

    def _allowed(self, entry_point: metadata.EntryPoint, distribution: str) -> bool:
        names = {_normalize(entry_point.name), _normalize(distribution)}
        if names & self._disabled:
            return False
        return self._only is None or bool(names & self._only)

    def _load_entry_points(self) -> None:
        seen: set[tuple[str, str]] = set()
        for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = entry_point.dist
            distribution = dist.metadata["Name"] if dist is not None else entry_point.name
            version = dist.version if dist is not None else "unknown"
            if (distribution, entry_point.name) in seen:  # the same install seen twice on sys.path
                continue
            seen.add((distribution, entry_point.name))
            if not self._allowed(entry_point, distribution):
                self.skipped.append(entry_point.name)
                disabled = {_normalize(entry_point.name), _normalize(distribution)} & self._disabled
                self._left_out(ENV_DISABLE if disabled else ENV_ONLY,
                               f"{entry_point.name} ({distribution})")
                continue
            requirement = kernel_requirement(dist)
            if requirement is not None and not requirement.specifier.contains(
                core.__version__, prereleases=True
            ):
                self.incompatible.append(
                    Incompatible(entry_point.name, distribution, version, str(requirement)))
                self.registries.failed_plugins.append(
                    f"{distribution} {version} (incompatible: needs {requirement})")
                continue
            try:
                plugin = entry_point.load()
            except Exception as exc:  # any crash on import must not take other plugins down
                self._record_failure(entry_point.name, distribution, version, exc)
                continue
            self.register(
                plugin, entry_point.name, distribution, version, f"entry point {entry_point.value}"
            )

    def _record_failure(self, name: str, distribution: str, version: str, exc: Exception) -> None:
        self.failures.append(
            LoadFailure(
                name=name,
                distribution=distribution,
                version=version,
                error=f"{type(exc).__name__}: {exc}",
                traceback="".join(traceback.format_exception(exc)),
            )
        )
        self.registries.failed_plugins.append(f"{distribution} {version}")

    def _check_pending(self) -> None:
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self._pm.get_name(exc.plugin) if exc.plugin is not None else None
            info = self._infos.get(name or "")
            where = f" ({info.distribution} {info.version})" if info else ""
            known = ", ".join(r.spec.hook_name for r in self.registries.values())
            raise PluginError(f"{exc}{where}; known hooks: {known}") from exc

    def _fill_registries(self) -> None:
        for stage, registry in self.registries.items():
            hook = getattr(self._pm.hook, registry.spec.hook_name)
            for hook_impl in hook.get_hookimpls():  # registration order
                info = self._infos[hook_impl.plugin_name]
                origin = Origin(info.name, info.distribution, info.version)

                register = functools.partial(_register_into, registry, origin=origin)

                before = set(registry.names())
                try:
                    hook_impl.function(register=register)
                except PluginError as exc:
                    # A component breaking its contract disables the plugin, like a crash;
                    # other errors (a name registered twice) stop the start-up.
                    if not isinstance(exc, ContractError) or (
                            info.distribution == KERNEL_DISTRIBUTION):
                        raise
                    self._record_failure(info.name, info.distribution, info.version, exc)
                    continue
                except Exception as exc:  # a broken third-party hook is reported, not fatal
                    if info.distribution == KERNEL_DISTRIBUTION:
                        raise
                    self._record_failure(info.name, info.distribution, info.version, exc)
                    continue
                added = sorted(set(registry.names()) - before)
                if added:
                    info.components.setdefault(stage, []).extend(added)

    def as_dict(self) -> dict[str, Any]:
        """Everything the listing shows, as plain data."""
        return {
            "kernel": {"version": core.__version__, "plugin_api": PLUGIN_API_VERSION},
            "stages": [
                {"name": r.spec.name, "hook": r.spec.hook_name,
                 "contract": None if r.spec.contract is None else r.spec.contract.__name__,
                 "declared_by": self.declared_stages.get(r.spec.name, KERNEL_DISTRIBUTION)}
                for r in self.registries.values()
            ],
            "plugins": [attrs.asdict(info) for info in self.plugins],
            "incompatible": [attrs.asdict(item) for item in self.incompatible],
            "skipped": list(self.skipped),
            "failures": [
                {k: v for k, v in attrs.asdict(f).items() if k != "traceback"}
                for f in self.failures
            ],
        }


def _register_into(registry: Registry, name: str, factory: Any, *, origin: Origin) -> None:
    registry.add(name, factory, origin)


@functools.cache
def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, loaded on first use."""
    return PluginManager().load()


def get_registries() -> Registries:
    """The registries filled by every loaded plugin."""
    return get_plugin_manager().registries


def format_listing(manager: PluginManager, verbose: bool = False) -> str:
    """Human-readable listing of plugins, their components per stage and load errors."""
    lines = [f"{KERNEL_DISTRIBUTION} {core.__version__}, plugin API {PLUGIN_API_VERSION}"]
    if manager.declared_stages:
        declared = ", ".join(f"{stage} (from {dist})"
                             for stage, dist in manager.declared_stages.items())
        lines.append(f"stages declared by plugins: {declared}")
    for info in manager.plugins:
        lines.append(f"{info.distribution} {info.version}  [{info.name}]  ({info.source})")
        for stage, names in info.components.items():
            lines.append(f"    {stage:<16} {', '.join(names)}")
    if manager.skipped:
        lines.append(f"skipped by {ENV_DISABLE}/{ENV_ONLY}: {', '.join(manager.skipped)}")
    if manager.incompatible:
        lines.append("incompatible (not loaded):")
        lines.extend(f"    {item.describe()}" for item in manager.incompatible)
    if manager.failures:
        lines.append("load errors:")
        for failure in manager.failures:
            lines.append(
                f"    {failure.distribution} {failure.version} [{failure.name}]: {failure.error}"
            )
            if verbose:
                lines.extend("        " + line for line in failure.traceback.splitlines())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m core.plugins [--json] [--verbose]``."""
    parser = argparse.ArgumentParser(
        prog="python -m core.plugins", description="List plugdet plugins and their components."
    )
    parser.add_argument("--json", action="store_true", help="print the listing as JSON")
    parser.add_argument("--verbose", action="store_true", help="show load-error tracebacks")
    args = parser.parse_args(argv)
    try:
        manager = PluginManager().load()
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(manager.as_dict(), indent=2))
    else:
        print(format_listing(manager, verbose=args.verbose))
    return 0


if __name__ == "__main__":
    from core.plugins import main as _main  # the imported module, not this __main__ copy

    sys.exit(_main())
