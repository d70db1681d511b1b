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
        "did you mean 'ResNet' (from plugdet), 'ResNetVd' (from plugdet-detr)?"
    )
    assert "Traceback" not in result.stderr


def test_wrong_type_in_config_exits_2_with_the_key_path(tmp_path):
    result = run_cli("--set-new", "--set", "model.head.num_classes=five", "--work-dir",
                     str(tmp_path / "w"),
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert "model.head.num_classes: expected int, got 'five'" in result.stderr


def write_distribution(site: Path, dist: str, module: str, body: str, version: str,
                       requires: str = "") -> None:
    (site / f"{module}.py").write_text(body)
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    depends = f"Requires-Dist: {requires}\n" if requires else ""
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n{depends}")
    (info / "entry_points.txt").write_text(f"[plugdet]\n{module.removeprefix('plugdet_')} = "
                                           f"{module}\n")


def test_a_crashing_plugin_is_listed_and_a_run_without_it_works(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    write_distribution(site, "plugdet-crash", "plugdet_crash",
                       "raise ImportError('missing native library')\n", "0.3")
    # written for plugin API 0.1: listed as incompatible and never imported
    write_distribution(site, "plugdet-old", "plugdet_old",
                       "raise SystemExit('an incompatible plugin was imported')\n", "1.4",
                       requires="plugdet<0.2,>=0.1")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}

    listing = subprocess.run(
        [sys.executable, "-m", "core.plugins", "--json"],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    (failure,) = [f for f in json.loads(listing.stdout)["failures"] if f["name"] == "crash"]
    assert failure["distribution"] == "plugdet-crash" and failure["version"] == "0.3"
    assert failure["error"] == "ImportError: missing native library"
    (old,) = json.loads(listing.stdout)["incompatible"]
    assert (old["distribution"], old["version"]) == ("plugdet-old", "1.4")
    assert old["requirement"] == "plugdet<0.2,>=0.1"

    work_dir = tmp_path / "work"
    result = run_cli(*TINY_RUN, "--work-dir", str(work_dir), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = work_dir.iterdir()
    assert (run_dir / "epoch_1.pth").is_file()
    records = [json.loads(line) for line in (run_dir / "vis_data/scalars.json").open()]
    assert any("val/coco/bbox_mAP" in record for record in records)
    assert any("train/loss_cls" in record for record in records)
    log = (run_dir / "train.log").read_text()
    assert "plugdet-old 1.4 [old] needs plugdet<0.2,>=0.1; this kernel is plugdet 0.2" in log


def test_print_config_fills_every_default_and_loads_back(tmp_path):
    from core.config import load_config
    from core.engine.full_config import complete_config
    from core.plugins import get_registries

    result = run_cli("--print-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    printed = tmp_path / "full.toml"
    printed.write_text(result.stdout)
    full = load_config(printed)
    assigner = full["model"]["head"]["assigner"]
    assert assigner == {"type": "MaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.4,
                        "min_pos_iou": 0.0, "ignore_iof_thr": -1.0, "gt_max_assign_all": True,
                        "allow_low_quality_matches": True, "low_quality_gt": "self"}
    assert "[model.head.assigner]" in result.stdout
    assert full["model"]["head"]["postprocess"]["nms_pre"] == 300  # the demo's own value
    assert complete_config(full, get_registries()) == full  # already complete


def test_a_default_component_is_swapped_with_one_override(tmp_path):
    work_dir = tmp_path / "work"
    result = run_cli(*TINY_RUN, "--set", "model.head.assigner.type=ATSSAssigner",
                     "--work-dir", str(work_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = work_dir.iterdir()
    from core.config import load_config

    saved = load_config(run_dir / "config.toml")
    assert saved["model"]["head"]["assigner"] == {"type": "ATSSAssigner", "topk": 9}
    assert saved["model"]["head"]["loss_cls"]["type"] == "FocalLoss"  # the full form is saved
