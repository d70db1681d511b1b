"""The plugin API is one module: plugins and contrib tools import ``core`` only through
``core.api``, and the documentation lists exactly its names."""

import pathlib
import re

import pytest

import core.api
from core.tools.layer_sizes import OUTSIDE_ROOTS, core_imports, product_files

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _product_modules() -> list[pathlib.Path]:
    """Every Python file a plugin or contrib distribution installs."""
    return [path for root in OUTSIDE_ROOTS for project in sorted((ROOT / root).glob("*/"))
            for path in product_files(project)]


def test_plugins_and_contrib_import_core_only_through_the_public_api():
    modules = _product_modules()
    assert len(modules) > 30  # the walk really sees the plugins
    outside_api = [f"{path.relative_to(ROOT)}:{line}: {module}"
                   for path in modules for line, module in core_imports(path)
                   if module != "core.api"]
    assert outside_api == []


def test_the_walk_sees_a_private_import(tmp_path):
    module = tmp_path / "plugin.py"
    module.write_text("from core.api import impl\n\ndef f():\n"
                      "    from core.models.heads.dense_head import flatten_levels\n")
    assert core_imports(module) == [(1, "core.api"), (4, "core.models.heads.dense_head")]


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
