"""Helpers for kernel tests: plugin objects defined in code and fake installed distributions."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from core.plugins import PluginManager


@pytest.fixture
def manager_with():
    """Build a manager from built-ins (none) plus the given plugin objects, no entry points."""

    def make(**plugins):
        return PluginManager(builtins=(), use_entry_points=False).load(extra=plugins)

    return make


def make_distribution(root: Path, dist: str, module: str, body: str, version: str = "1.0",
                      requires: tuple[str, ...] = ()) -> None:
    """Write an installed-looking distribution (module + dist-info with a plugdet entry point
    and ``Requires-Dist`` lines for ``requires``)."""
    (root / f"{module}.py").write_text(textwrap.dedent(body))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    depends = "".join(f"Requires-Dist: {line}\n" for line in requires)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n{depends}"
    )
    (info / "entry_points.txt").write_text(f"[plugdet]\n{module} = {module}\n")


@pytest.fixture
def subprocess_env(tmp_path, monkeypatch):
    """Environment for a child Python that also sees distributions written under tmp_path."""
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *sys.path])
    return env
