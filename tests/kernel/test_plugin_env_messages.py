"""Unknown-type errors name the plugins that PLUGDET_PLUGINS / PLUGDET_DISABLE_PLUGINS left
out; names in those variables that match nothing installed are warned about."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from core.errors import ConfigError
from core.plugins import PluginManager

from .conftest import make_distribution
from .test_plugins import GOOD


def test_unknown_type_names_the_plugins_left_out_by_the_disable_variable(tmp_path,
                                                                         monkeypatch, caplog):
    (tmp_path / "builtin_demo.py").write_text(GOOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    env = {"PLUGDET_DISABLE_PLUGINS": "builtin_demo,no_such_plugin"}
    with caplog.at_level(logging.WARNING, logger="plugdet.plugins"):
        manager = PluginManager(builtins=("builtin_demo",), use_entry_points=False,
                                environ=env).load()
    with pytest.raises(ConfigError) as info:
        manager.registries.build("backbone", {"type": "Wide"}, path="model.backbone")
    assert "left out by PLUGDET_DISABLE_PLUGINS: builtin_demo" in str(info.value)
    warnings = [r.getMessage() for r in caplog.records]
    assert any("PLUGDET_DISABLE_PLUGINS: 'no-such-plugin' matches no installed plugin" in w
               for w in warnings), warnings
    assert not any("builtin-demo" in w for w in warnings)


def test_unknown_type_names_the_plugins_left_out_by_the_only_variable(tmp_path,
                                                                      subprocess_env):
    make_distribution(tmp_path, "plugdet-wide", "plugdet_wide", GOOD)
    make_distribution(tmp_path, "plugdet-tall", "plugdet_tall", GOOD.replace("Wide", "Tall"))
    result = subprocess.run(
        [sys.executable, "-c", "from core.plugins import get_registries;"
         "get_registries().build('backbone', {'type': 'Wide'})"],
        env={**subprocess_env, "PLUGDET_PLUGINS": "plugdet_tall,plugdet_typo"},
        capture_output=True, text=True, check=False)
    assert "left out by PLUGDET_PLUGINS: plugdet_wide (plugdet-wide)" in result.stderr
    assert "PLUGDET_PLUGINS: 'plugdet-typo' matches no installed plugin" in result.stderr
