"""A soft-target classification loss chosen on the command line: it trains inside RetinaHead,
and a head that cannot give it its targets is refused at start-up in one line."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

RETINANET_DEMO = resources.files("plugdet_retinanet") / "configs" / (
    "retinanet_tinynet_fpn_demo_shapes.toml")
YOLOV8_DEMO = resources.files("plugdet_yolo") / "configs" / "yolov8_n_demo_shapes.toml"
TINY_RUN = [
    "--set", "train.max_epochs=1",
    "--set", "train_dataloader.dataset.num_images=16",
    "--set", "val_dataloader.dataset.num_images=8",
    "--set", "test_dataloader.dataset.num_images=8",
    "--set", "default_hooks.logger.interval=1",
]  # fmt: skip


def run_cli(config: object, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core.run", str(config), *args],
                          capture_output=True, text=True, check=False, cwd=cwd)


def test_quality_focal_loss_in_the_retinanet_demo_trains_an_epoch(tmp_path):
    result = run_cli(RETINANET_DEMO, "--set", "model.head.loss_cls.type=QualityFocalLoss",
                     "--work-dir", str(tmp_path / "w"), *TINY_RUN, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    losses = [float(v) for v in re.findall(r"loss_cls: (\S+)", result.stdout + result.stderr)]
    assert len(losses) == 2 and all(math.isfinite(v) and v > 0 for v in losses)
    (saved,) = (tmp_path / "w").glob("*/config.toml")
    assert 'type = "QualityFocalLoss"' in saved.read_text()


def test_a_labels_loss_in_a_soft_target_head_exits_2_naming_both(tmp_path):
    result = run_cli(YOLOV8_DEMO, "--set", "model.head.loss_cls.type=FocalLoss",
                     "--work-dir", str(tmp_path / "w"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: model.head.loss_cls: FocalLoss takes class labels, but YOLOv8Head gives soft "
        "(quality) targets; use a loss that takes soft targets, e.g. QualityFocalLoss"]
