"""Import direction inside ``core`` (``docs/architecture.md``): every import points to its own
layer or one below, models and data import only the kernel, and the package graph has no
cycle."""

import pathlib
from collections import defaultdict

import pytest

from core.tools.layer_sizes import (
    LAYERS,
    core_imports,
    layer_of,
    layer_rank,
    module_name,
    product_files,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _imports() -> list[tuple[str, int, str]]:
    """``(module, line, imported core module)`` of every import in ``core``."""
    return [(module_name(path, ROOT), line, target)
            for path in product_files(ROOT / "core") for line, target in core_imports(path)]


def _package(module: str) -> str:
    """The node of a module in the package graph: a package directly under ``core`` (with
    ``core.visualization.hooks`` apart from the drawing code, as a layer of its own), one file
    directly under ``core``, or the kernel's files together."""
    if layer_of(module) == "kernel":
        return "kernel"
    if module.startswith("core.visualization.hooks"):
        return "core.visualization.hooks"
    return ".".join(module.split(".")[:2])


def test_every_module_of_core_has_a_layer():
    modules = [module_name(p, ROOT) for p in product_files(ROOT / "core")]
    assert len(modules) > 100
    assert {layer_of(m) for m in modules} == {name for name, _ in LAYERS}


def test_imports_point_to_the_same_layer_or_below():
    upward = [f"{module}:{line} ({layer_of(module)}) imports {target} ({layer_of(target)})"
              for module, line, target in _imports()
              if layer_rank(layer_of(target)) > layer_rank(layer_of(module))]
    assert upward == []


@pytest.mark.parametrize("package", ["core.models", "core.data"])
def test_models_and_data_import_only_the_kernel_and_themselves(package):
    outside = [f"{module}:{line} imports {target}" for module, line, target in _imports()
               if module.startswith(package + ".") and not target.startswith(package)
               and layer_of(target) != "kernel"]
    assert outside == []


def test_the_package_graph_of_core_has_no_cycle():
    graph = defaultdict(set)
    for module, _, target in _imports():
        source, destination = _package(module), _package(target)
        if source != destination:
            graph[source].add(destination)
    cycles, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for successor in sorted(graph[node]):
            if state.get(successor) == "open":
                cycles.append([*path[path.index(successor):], successor])
            elif successor not in state:
                visit(successor, [*path, successor])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_layer_check_sees_an_upward_import():
    assert layer_rank(layer_of("core.engine.runner")) > layer_rank(layer_of("core.models.heads"))
    assert layer_of("core.visualization.hooks.curves") == "vis hooks"
    assert layer_of("core.visualization.canvas") == "library"
    assert layer_of("core") == "kernel" and layer_of("core.engine.full_config") == "engine"
