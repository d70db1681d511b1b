"""Configs read back as they were written, references cannot blow up, and ``_base_`` accepts a
distribution's name."""

from __future__ import annotations

import itertools
import sys
import textwrap
from pathlib import Path

import pytest

from core.config import dump_config, load_config, read_config, resolve_references
from core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted([*ROOT.glob("core/configs/**/*.toml"), *ROOT.glob("plugins/*/configs/**/*.toml")])


def reload(config: dict) -> dict:
    """What reading the dumped ``config`` gives (references resolved)."""
    return resolve_references(tomllib.loads(dump_config(config)))


# Literal ``${`` survives dump -> load ------------------------------------------------------

def test_every_short_string_of_dollars_and_braces_survives_dump_and_reload():
    """A resolved value is written so that reading it again gives the same text, never a
    live reference (``a`` exists, so a leaked reference would silently become ``A``)."""
    for length in range(7):
        for chars in itertools.product("${}a", repeat=length):
            text = "".join(chars)
            config = {"a": "A", "v": text, "nested": {"list": [text, 1, {"t": text}]}}
            assert reload(config) == config, text


def test_literal_reference_round_trips_through_files(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('[data]\nroot = "/d"\n[notes]\ntemplate = "$${data.root}/images"\n'
                    'mixed = "${data.root}/$${data.root}"\n')
    first = load_config(path)
    assert first["notes"] == {"template": "${data.root}/images", "mixed": "/d/${data.root}"}
    saved = tmp_path / "config.toml"
    saved.write_text(dump_config(first))
    assert load_config(saved) == first
    again = tmp_path / "again.toml"
    again.write_text(dump_config(load_config(saved)))
    assert again.read_text() == saved.read_text()


# Reference bombs ---------------------------------------------------------------------------

def bomb(levels: int, copies: int, leaf: str = "x" * 10, inline: bool = False) -> dict:
    """``level{i}`` holds ``copies`` references to ``level{i-1}``: ``copies ** levels``
    leaves once expanded."""
    config: dict = {"lol": {"level0": leaf}}
    for i in range(1, levels + 1):
        ref = f"${{lol.level{i - 1}}}"
        config["lol"][f"level{i}"] = ref * copies if inline else [ref] * copies
    return config


@pytest.mark.parametrize("inline", [False, True], ids=["lists", "strings"])
def test_a_reference_bomb_is_cut_off_with_a_clear_error(inline):
    """10**40 values (or characters) cannot be expanded: the error can only arrive because
    each key is resolved once and the expansion is counted, not built."""
    with pytest.raises(ConfigError) as info:
        resolve_references(bomb(levels=40, copies=10, inline=inline))
    message = str(info.value)
    from core import config_references

    unit, limit = (("characters", config_references.MAX_REFERENCE_CHARS) if inline else
                   ("values", config_references.MAX_REFERENCE_VALUES))
    assert message.startswith("lol.level")
    assert f"references expand past {limit:,} {unit}" in message
    assert "(a reference bomb?)" in message


def test_repeated_references_below_the_limit_resolve_to_independent_copies():
    config = bomb(levels=3, copies=10)
    config["other"] = "${lol.level3}"
    resolved = resolve_references(config)
    assert len(resolved["lol"]["level3"]) == 10
    assert all(len(item) == 10 for item in resolved["lol"]["level3"])
    assert resolved["other"] == resolved["lol"]["level3"]
    resolved["other"][0][0].append("changed")
    assert resolved["lol"]["level3"][0][0] == ["x" * 10] * 10
    assert resolved["lol"]["level3"][1][0] == ["x" * 10] * 10


def test_cycles_are_still_found_with_resolved_keys_reused():
    config = {"a": ["${b}", "${b}"], "b": "${c}", "c": {"d": "${a}"}}
    with pytest.raises(ConfigError, match=r"reference cycle: a\.0 -> b -> c -> a"):
        resolve_references(config)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_configs_resolve_far_below_the_limits(path, monkeypatch):
    from core import config_references

    for name in ("MAX_REFERENCE_VALUES", "MAX_REFERENCE_CHARS"):
        monkeypatch.setattr(config_references, name, getattr(config_references, name) // 100)
    resolve_references(read_config(path))


# ``_base_`` by distribution name -----------------------------------------------------------

def write_distribution(root: Path, dist: str, package: str, top_level: bool) -> None:
    """An installed-looking distribution ``dist`` whose import package ``package`` ships
    ``configs/base.toml``; its import name is in ``top_level.txt`` or only in its entry
    point."""
    (root / package / "configs").mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    (root / package / "configs" / "base.toml").write_text("[optim]\nlr = 0.5\n")
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    if top_level:
        (info / "top_level.txt").write_text(f"{package}\n")
    else:
        (info / "entry_points.txt").write_text(f"[plugdet]\nthing = {package}.plugin\n")


@pytest.mark.parametrize("top_level", [True, False], ids=["top_level.txt", "entry point"])
def test_a_base_may_name_the_distribution_instead_of_the_import_package(tmp_path, monkeypatch,
                                                                        top_level):
    # One name per case: the import package of one case stays in ``sys.modules``.
    suffix = "top" if top_level else "ep"
    write_distribution(tmp_path, f"cfg-dist-{suffix}", f"cfgdist_impl_{suffix}", top_level)
    monkeypatch.syspath_prepend(str(tmp_path))
    exp = tmp_path / "exp.toml"
    exp.write_text(f'_base_ = ["cfg-dist-{suffix}::configs/base.toml"]\n')
    assert load_config(exp)["optim"]["lr"] == 0.5


def test_the_installed_yolo_plugin_can_be_named_by_its_distribution(tmp_path):
    pytest.importorskip("plugdet_yolo")
    by_dist, by_import = tmp_path / "dist.toml", tmp_path / "import.toml"
    by_dist.write_text('_base_ = ["plugdet-yolo::configs/yolov8_n_demo_shapes.toml"]\n')
    by_import.write_text('_base_ = ["plugdet_yolo::configs/yolov8_n_demo_shapes.toml"]\n')
    assert read_config(by_dist) == read_config(by_import)


def test_a_package_that_is_not_installed_is_still_named(tmp_path):
    exp = tmp_path / "exp.toml"
    exp.write_text('_base_ = ["no-such-dist-xyz::configs/base.toml"]\n')
    with pytest.raises(ConfigError, match="package 'no-such-dist-xyz' is not installed"):
        load_config(exp)


# Through the CLI ---------------------------------------------------------------------------

DEMO = ROOT / "plugins/retinanet/configs/retinanet_tinynet_fpn_demo_shapes.toml"


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_print_config_keeps_a_literal_reference_literal(tmp_path, capsys):
    from core.run import main

    config = write(tmp_path / "exp.toml", f"""
        _base_ = ["{DEMO.as_posix()}"]
        [data]
        template = "$${{device}}/images"
        """)
    assert main([str(config), "--print-config"]) == 0
    printed = write(tmp_path / "printed.toml", capsys.readouterr().out)
    assert 'template = "$${device}/images"' in printed.read_text()
    assert main([str(printed), "--print-config"]) == 0
    assert capsys.readouterr().out == printed.read_text()


def test_print_config_refuses_a_reference_bomb(tmp_path, capsys):
    from core.run import main

    levels = "\n".join(f"level{i} = [" + ", ".join([f'"${{lol.level{i - 1}}}"'] * 10) + "]"
                       for i in range(1, 30))
    config = write(tmp_path / "bomb.toml", f'[lol]\nlevel0 = "xxxxxxxxxx"\n{levels}\n')
    assert main([str(config), "--print-config"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: lol.level")
    assert "references expand past" in captured.err and "(a reference bomb?)" in captured.err
    assert len(captured.err.strip().splitlines()) == 1


@pytest.fixture
def toy(monkeypatch):
    """The engine tests' toy components in the registries, restored afterwards."""
    import core.plugins

    monkeypatch.syspath_prepend(str(ROOT / "tests" / "engine"))
    monkeypatch.setattr(core.plugins, "get_plugin_manager", core.plugins.get_plugin_manager)
    import engine_toy

    engine_toy.install_toy_plugin()
    return engine_toy


def test_a_runs_saved_config_keeps_a_literal_reference_for_test(tmp_path, toy):
    from core.engine.full_config import load_full_config
    from core.run import main

    config = toy.write_config(tmp_path / "toy.toml", toy.toy_config(
        train={"max_epochs": 1}, data={"template": "$${device}/images"}))
    assert main([str(config), "--work-dir", str(tmp_path / "runs")]) == 0
    run_dir = toy.only_run_dir(tmp_path / "runs")
    saved = run_dir / "config.toml"
    assert 'template = "$${device}/images"' in saved.read_text()
    assert load_full_config(str(saved))["data"] == {"template": "${device}/images"}
    assert main([str(saved), "--work-dir", str(tmp_path / "tests"), "--test",
                 str(run_dir / "epoch_1.pth")]) == 0
    tested = toy.only_run_dir(tmp_path / "tests") / "config.toml"
    assert tested.read_text() == saved.read_text()
