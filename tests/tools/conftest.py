"""A tiny demo run shared by the tool tests: 2 epochs on 32 images (a poor but real model)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

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
# enough training for distinct scores (an untrained head ties many of them)
TRAINING = ["--set", "train.max_epochs=2", "--set", "train_dataloader.dataset.num_images=32",
            "--set", "train_dataloader.batch_size=8"]
BOTH_BACKENDS = 'vis_backends=[{type = "LocalVisBackend"}, {type = "TensorboardVisBackend"}]'


@attrs.frozen
class TinyDemo:
    """The run directory, its checkpoint, its log and the environment of its data cache."""

    run_dir: Path
    checkpoint: Path
    log: str
    env: dict[str, str]


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> TinyDemo:
    root = tmp_path_factory.mktemp("tiny_demo")
    env = {**os.environ, "PLUGDET_CACHE": str(root / "cache")}
    result = subprocess.run(
        [sys.executable, "-m", "core.run", str(DEMO), *TINY_RUN, *TRAINING, "--set", BOTH_BACKENDS,
         "--work-dir", str(root / "work")],
        capture_output=True, text=True, check=False, cwd=root, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (root / "work").iterdir()
    return TinyDemo(run_dir, run_dir / "epoch_2.pth", (run_dir / "train.log").read_text(), env)
