"""The full config of every shipped config (what ``--print-config`` prints) against a snapshot.

Defaults may move between a component's signature, a head's default tables and the base
TOMLs; the full config a run builds from must stay the same. The snapshots under
``tests/kernel/full_configs/`` are compared as data (key order aside). After an intended change
of a shipped config or a default, rewrite them with::

    PLUGDET_UPDATE_SNAPSHOTS=1 python -m pytest tests/kernel/test_full_config_snapshots.py

and review the diff of the snapshot files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomllib

from core.config import dump_config
from core.engine.full_config import load_full_config

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = Path(__file__).resolve().parent / "full_configs"
UPDATE = os.environ.get("PLUGDET_UPDATE_SNAPSHOTS") == "1"
REGENERATE = ("regenerate on purpose with PLUGDET_UPDATE_SNAPSHOTS=1 python -m pytest "
              "tests/kernel/test_full_config_snapshots.py and review the snapshot diff")


def shipped_configs() -> dict[str, Path]:
    """Snapshot name (``<plugin>__<stem>``) -> complete shipped config (no ``_base_`` part)."""
    found = {f"core__{path.stem}": path for path in (ROOT / "core/configs").rglob("*.toml")}
    for path in ROOT.glob("plugins/*/plugdet_*/configs/**/*.toml"):
        found[f"{path.relative_to(ROOT / 'plugins').parts[0]}__{path.stem}"] = path
    return {name: path for name, path in sorted(found.items())
            if "_base_" not in path.relative_to(ROOT).parts}


def full_config_text(path: Path) -> str:
    """What ``python -m core.run CONFIG --print-config`` prints for ``path``."""
    return dump_config(load_full_config(str(path), counts_from_data=True))


def differences(expected: Any, actual: Any, where: str = "") -> Iterator[str]:
    """``key: expected -> actual`` for each leaf where the two configs differ."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(expected.keys() | actual.keys()):
            path = f"{where}.{key}" if where else key
            if key not in actual:
                yield f"{path}: {expected[key]!r} -> (missing)"
            elif key not in expected:
                yield f"{path}: (missing) -> {actual[key]!r}"
            else:
                yield from differences(expected[key], actual[key], path)
    elif (isinstance(expected, list) and isinstance(actual, list)
          and len(expected) == len(actual)):
        for i, (left, right) in enumerate(zip(expected, actual, strict=True)):
            yield from differences(left, right, f"{where}[{i}]")
    elif expected != actual or type(expected) is not type(actual):
        yield f"{where}: {expected!r} -> {actual!r}"


CONFIGS = shipped_configs()


def test_there_are_shipped_configs_and_no_stale_snapshots() -> None:
    assert len(CONFIGS) > 10
    stale = sorted({p.stem for p in SNAPSHOTS.glob("*.toml")} - set(CONFIGS))
    if UPDATE:
        for name in stale:
            (SNAPSHOTS / f"{name}.toml").unlink()
        return
    assert not stale, f"snapshots of configs that are no longer shipped: {stale}; {REGENERATE}"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_full_config_matches_snapshot(name: str) -> None:
    text = full_config_text(CONFIGS[name])
    snapshot = SNAPSHOTS / f"{name}.toml"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        snapshot.write_text(text, encoding="utf-8")
        return
    assert snapshot.is_file(), f"no snapshot {snapshot.relative_to(ROOT)}; {REGENERATE}"
    expected = tomllib.loads(snapshot.read_text(encoding="utf-8"))
    changed = list(differences(expected, tomllib.loads(text)))
    assert not changed, (
        f"the full config of {CONFIGS[name].relative_to(ROOT)} changed:\n  "
        + "\n  ".join(changed) + f"\n{REGENERATE}"
    )
