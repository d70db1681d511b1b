"""The plugin API is one module: plugins and contrib tools import ``core`` only through
``core.api``, and the documentation lists exactly its names."""

import ast
import pathlib
import re

import pytest

import core.api

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUTSIDE_CODE_ROOTS = ("plugins", "contrib")


def _product_modules() -> list[pathlib.Path]:
    """Every Python file a plugin or contrib distribution installs (tests and build output
    left out)."""
    files = []
    for root in OUTSIDE_CODE_ROOTS:
        for path in sorted((ROOT / root).rglob("*.py")):
            parts = path.relative_to(ROOT).parts
            if "tests" in parts or "build" in parts or path.name.startswith("test_"):
                continue
            files.append(path)
    return files


def _core_imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of a ``core`` module in ``path``, nested ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, m) for m in modules if m.split(".")[0] == "core"]
    return found


def test_plugins_and_contrib_import_core_only_through_the_public_api():
    modules = _product_modules()
    assert len(modules) > 30  # the walk really sees the plugins
    outside_api = [f"{path.relative_to(ROOT)}:{line}: {module}"
                   for path in modules for line, module in _core_imports(path)
                   if module != "core.api"]
    assert outside_api == []


def test_the_walk_sees_a_private_import(tmp_path):
    module = tmp_path / "plugin.py"
    module.write_text("from core.api import impl\n\ndef f():\n"
                      "    from core.models.heads.dense_head import flatten_levels\n")
    assert _core_imports(module) == [(1, "core.api"), (4, "core.models.heads.dense_head")]


def test_every_public_name_exists_and_is_listed_in_the_plugin_guide():
    guide = (ROOT / "docs" / "plugins.md").read_text()
    section = guide.split("## The public API", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", section))
    public = set(core.api.__all__)
    assert [name for name in public if not hasattr(core.api, name)] == []
    assert sorted(public - listed) == []
    assert sorted(listed - public) == []


@pytest.mark.parametrize("name", ["DenseHead", "Hook", "BaseVisBackend", "component", "impl"])
def test_public_names_are_the_kernel_objects_themselves(name):
    from core.engine.hooks import Hook
    from core.hookspecs import hookimpl
    from core.models.heads import DenseHead
    from core.registry import component
    from core.visualization.backends.base import BaseVisBackend

    expected = {"DenseHead": DenseHead, "Hook": Hook, "BaseVisBackend": BaseVisBackend,
                "component": component, "impl": hookimpl}[name]
    assert getattr(core.api, name) is expected


def test_the_changelog_versions_the_public_api():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"plugin API {core.api.PLUGIN_API_VERSION}" in changelog
    assert "core.api" in changelog
