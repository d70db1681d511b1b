"""Run directories with analysis reports for the report tests: copies of the tiny demo run
(the fixture's own directory stays untouched)."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pytest

from core.tools.analyze import main as analyze
from core.tools.compare import main as compare


def copy_run(source: Path, target: Path, lr: str | None = None) -> Path:
    """Copy a run directory; ``lr`` replaces the optimiser's learning rate in its config."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("report"))
    if lr is not None:
        config = target / "config.toml"
        text = config.read_text()
        assert "\nlr = 0.003\n" in text
        config.write_text(text.replace("\nlr = 0.003\n", f"\nlr = {lr}\n"))
    return target


def analyzed_runs(tiny_demo, root: Path) -> tuple[Path, Path, Path, str]:
    """Two copies (the second with another learning rate), each analysed, then compared;
    ``(run A, run B, comparison folder, analyze's output of run A)``."""
    run_a = copy_run(tiny_demo.run_dir, root / "demo" / "run_a")
    run_b = copy_run(tiny_demo.run_dir, root / "demo" / "run_b", lr="0.001")
    output = io.StringIO()
    with pytest.MonkeyPatch.context() as monkeypatch, contextlib.redirect_stdout(output):
        monkeypatch.setenv("PLUGDET_CACHE", tiny_demo.env["PLUGDET_CACHE"])
        assert analyze([str(run_a), "--num-images", "3", "--device", "cpu"]) == 0
        printed = output.getvalue()
        assert analyze([str(run_b), "--checkpoint", "last", "--split", "val", "--device",
                        "cpu"]) == 0
        assert compare([str(run_a), str(run_b), "--out", str(root / "compare")]) == 0
    return run_a, run_b, root / "compare", printed
