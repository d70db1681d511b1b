"""The plugin template, really installed with pip, is discovered, listed and buildable."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "contrib" / "plugin_template"


def pip(*args):
    return subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def installed_template():
    already = importlib.util.find_spec("plugdet_example") is not None
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    result = pip("install", "--no-deps", *isolation, str(TEMPLATE))
    assert result.returncode == 0, result.stdout + result.stderr
    yield
    if not already:
        pip("uninstall", "-y", "plugdet-example")


def test_listing_shows_the_template_under_its_distribution(installed_template):
    result = subprocess.run(
        [sys.executable, "-m", "core.plugins", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    plugins = {p["distribution"]: p for p in json.loads(result.stdout)["plugins"]}
    example = plugins["plugdet-example"]
    assert example["version"] == "0.2.0"
    assert example["components"] == {
        "backbone": ["ExampleConvNet"],
        "neck": ["ExampleChannelMapper"],
        "loss": ["ExampleL1Loss"],
        "transform": ["ExampleInvert"],
    }
    text = subprocess.run(
        [sys.executable, "-m", "core.plugins"], capture_output=True, text=True, check=True
    ).stdout
    assert "plugdet-example 0.2.0  [example]" in text


def test_build_uses_the_installed_template(installed_template):
    code = (
        "from core.plugins import get_registries\n"
        "cfg = {'type': 'ExampleConvNet', 'widths': [4, 8, 16]}\n"
        "net = get_registries().build('backbone', cfg)\n"
        "print(type(net).__module__, net.out_channels)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT.parent,
    )
    assert result.stdout.strip() == "plugdet_example.components (8, 16)"


def test_template_own_tests_pass_when_installed(installed_template):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(TEMPLATE / "tests")],
        capture_output=True,
        text=True,
        check=False,
        cwd=TEMPLATE,
    )
    assert result.returncode == 0, result.stdout[-2000:]
