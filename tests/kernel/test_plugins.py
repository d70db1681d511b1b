"""Plugin discovery: entry points, environment filters, crashing and misspelled plugins."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core import impl
from core.errors import PluginError
from core.plugins import PluginManager

from .conftest import make_distribution

GOOD = """
from core import impl

class Wide:
    def __init__(self, width: int = 4):
        self.width = width

    def forward(self, images):
        return (images,)

@impl
def register_backbones(register):
    register("Wide", Wide)
"""

CRASHING = """
raise RuntimeError("this plugin is broken on purpose")
"""

MISSPELLED = """
from core import impl

@impl
def register_backbone(register):
    register("Typo", object)
"""


def _listing(env, *extra_env):
    result = subprocess.run(
        [sys.executable, "-m", "core.plugins", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return result


def test_entry_point_plugins_are_listed_with_distribution_and_version(tmp_path, subprocess_env):
    make_distribution(tmp_path, "plugdet-wide", "plugdet_wide", GOOD, version="2.3")
    result = _listing(subprocess_env)
    assert result.returncode == 0, result.stderr
    plugins = {p["distribution"]: p for p in json.loads(result.stdout)["plugins"]}
    wide = plugins["plugdet-wide"]
    assert wide["version"] == "2.3"
    assert wide["components"] == {"backbone": ["Wide"]}
    assert wide["source"] == "entry point plugdet_wide"


def test_crashing_plugin_is_reported_and_others_keep_working(tmp_path, subprocess_env):
    make_distribution(tmp_path, "plugdet-wide", "plugdet_wide", GOOD)
    make_distribution(tmp_path, "plugdet-broken", "plugdet_broken", CRASHING, version="0.9")
    result = _listing(subprocess_env)
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    failure = next(f for f in listing["failures"] if f["distribution"] == "plugdet-broken")
    assert failure["version"] == "0.9"
    assert "RuntimeError: this plugin is broken on purpose" in failure["error"]
    assert "plugdet-wide" in {p["distribution"] for p in listing["plugins"]}
    text = subprocess.run(
        [sys.executable, "-m", "core.plugins"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "load errors:" in text and "plugdet-broken 0.9" in text
    build = subprocess.run(
        [
            sys.executable,
            "-c",
            "from core.plugins import get_registries;"
            "print(get_registries().build('backbone', {'type': 'Wide', 'width': 7}).width)",
        ],
        env=subprocess_env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert build.stdout.strip() == "7"


def test_unknown_name_mentions_failed_plugins(tmp_path, subprocess_env):
    make_distribution(tmp_path, "plugdet-broken", "plugdet_broken", CRASHING, version="0.9")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from core.plugins import get_registries;"
            "get_registries().build('head', {'type': 'Missing'})",
        ],
        env=subprocess_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "failed to load might provide it: plugdet-broken 0.9" in result.stderr


def test_misspelled_hook_fails_at_start_up_naming_the_plugin(tmp_path, subprocess_env):
    make_distribution(tmp_path, "plugdet-typo", "plugdet_typo", MISSPELLED, version="0.1")
    result = _listing(subprocess_env)
    assert result.returncode == 2
    assert "register_backbone" in result.stderr
    assert "plugdet-typo 0.1" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "expect_wide", "expect_tall"),
    [
        ("PLUGDET_DISABLE_PLUGINS", "plugdet-wide", False, True),
        ("PLUGDET_DISABLE_PLUGINS", "plugdet_wide,plugdet_tall", False, False),
        ("PLUGDET_PLUGINS", "plugdet_tall", False, True),
    ],
)
def test_environment_filters(tmp_path, subprocess_env, variable, value, expect_wide, expect_tall):
    make_distribution(tmp_path, "plugdet-wide", "plugdet_wide", GOOD)
    make_distribution(tmp_path, "plugdet-tall", "plugdet_tall", GOOD.replace("Wide", "Tall"))
    env = {**subprocess_env, variable: value}
    listing = json.loads(_listing(env).stdout)
    loaded = {p["distribution"] for p in listing["plugins"]}
    assert ("plugdet-wide" in loaded) is expect_wide
    assert ("plugdet-tall" in loaded) is expect_tall
    assert ("plugdet_wide" in listing["skipped"]) is not expect_wide
    assert ("plugdet_tall" in listing["skipped"]) is not expect_tall


def test_builtins_register_through_the_same_path(tmp_path, monkeypatch):
    (tmp_path / "builtin_demo.py").write_text(GOOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    manager = PluginManager(builtins=("builtin_demo",), use_entry_points=False).load()
    (info,) = manager.plugins
    assert (info.distribution, info.source) == ("plugdet", "built-in")
    assert manager.registries["backbone"].get("Wide").origin.plugin == "builtin_demo"


def test_registration_hook_that_raises_is_a_recorded_failure(manager_with):
    class Raises:
        @impl
        def register_necks(self, register):
            raise KeyError("boom")

    manager = manager_with(raises=Raises())
    (failure,) = manager.failures
    assert failure.name == "raises" and "KeyError" in failure.error


def test_hook_with_wrong_arguments_is_refused():
    class Wrong:
        @impl
        def register_necks(self, register, extra):
            pass

    with pytest.raises(PluginError, match="plugin 'wrong'"):
        PluginManager(builtins=(), use_entry_points=False).load(extra={"wrong": Wrong()})
