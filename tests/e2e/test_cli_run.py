"""The command line end to end: a config error exits 2, a broken plugin does not stop a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "plugins/retinanet/configs/retinanet_tinynet_fpn_demo_shapes.toml"
TINY_RUN = [
    "--set", "train.max_epochs=1",
    "--set", "train.val_interval=1",
    "--set", "train_dataloader.dataset.num_images=8",
    "--set", "train_dataloader.batch_size=4",
    "--set", "val_dataloader.dataset.num_images=4",
    "--set", "test_dataloader.dataset.num_images=4",
]  # fmt: skip


def run_cli(*args: str, env: dict | None = None, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core.run", str(DEMO), *args],
        capture_output=True, text=True, check=False, env=env, cwd=cwd,
    )  # fmt: skip


def test_misspelled_component_exits_2_naming_the_closest(tmp_path):
    result = run_cli("--set", "model.backbone.type=ResNett", "--work-dir", str(tmp_path / "w"),
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: model.backbone.type: unknown backbone 'ResNett'; "
        "did you mean 'ResNet' (from plugdet)?"
    )
    assert "Traceback" not in result.stderr


def test_wrong_type_in_config_exits_2_with_the_key_path(tmp_path):
    result = run_cli("--set-new", "--set", "model.head.num_classes=five", "--work-dir",
                     str(tmp_path / "w"),
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert "model.head.num_classes: expected int, got 'five'" in result.stderr


def test_a_crashing_plugin_is_listed_and_a_run_without_it_works(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "plugdet_crash.py").write_text("raise ImportError('missing native library')\n")
    info = site / "plugdet_crash-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugdet-crash\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[plugdet]\ncrash = plugdet_crash\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}

    listing = subprocess.run(
        [sys.executable, "-m", "core.plugins", "--json"],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    (failure,) = [f for f in json.loads(listing.stdout)["failures"] if f["name"] == "crash"]
    assert failure["distribution"] == "plugdet-crash" and failure["version"] == "0.3"
    assert failure["error"] == "ImportError: missing native library"

    work_dir = tmp_path / "work"
    result = run_cli(*TINY_RUN, "--work-dir", str(work_dir), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = work_dir.iterdir()
    assert (run_dir / "epoch_1.pth").is_file()
    records = [json.loads(line) for line in (run_dir / "vis_data/scalars.json").open()]
    assert any("val/coco/bbox_mAP" in record for record in records)
    assert any("train/loss_cls" in record for record in records)
