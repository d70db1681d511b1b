"""WandbVisBackend in offline mode: the run file is read back and holds what was logged."""

import numpy as np
import pytest
import torch
import wandb
from plugdet_wandb import WandbVisBackend, read_offline_run
from torch import nn

from core.visualization import Visualizer


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("wandb")
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "train.py").write_text("print('hi')\n")
    work_dir = tmp_path / "work"
    vis = Visualizer(
        vis_backends=[
            {
                "type": "WandbVisBackend",
                "name": "wandb",
                "mode": "offline",
                "project": "plugdet-test",
                "log_code_dir": str(code_dir),
                "watch_log": "gradients",
                "watch_log_freq": 1,
            }
        ],
        save_dir=str(work_dir),
    )
    backend = vis.get_backend("wandb")
    assert isinstance(backend, WandbVisBackend)
    assert not (work_dir / "vis_data").exists()  # the run starts on first use

    config = {"seed": 0, "optim": {"type": "SGD", "lr": 0.02}, "model": {"type": "RetinaNet"}}
    vis.add_config(config)
    vis.add_scalars({"train/loss": 1.5, "train/lr": 0.02}, step=1)
    vis.add_scalar("coco/bbox_mAP", 0.4, step=2)
    vis.add_image("val/img", np.zeros((6, 8, 3), np.uint8), step=2)
    vis.add_histogram("params/w", torch.arange(10.0), step=3)
    vis.add_text("env", "torch " + torch.__version__)

    assert isinstance(backend.experiment, wandb.Run)  # the native run object
    model = nn.Linear(3, 1)
    vis.watch_model(model)
    model(torch.ones(2, 3)).sum().backward()
    vis.add_scalar("train/loss", 1.0, step=4)
    vis.close()
    return work_dir, config


def find_run(work_dir):
    (run_dir,) = (work_dir / "vis_data" / "wandb").glob("offline-run-*")
    return read_offline_run(run_dir)


def test_offline_run_holds_config_scalars_media_and_artifacts(run_dirs):
    work_dir, config = run_dirs
    run = find_run(work_dir)
    assert {k: v for k, v in run.config.items() if k != "_wandb"} == config
    steps = {key: row["global_step"] for row in run.history for key in row if "/" in key}
    assert steps["train/loss"] == 4 and steps["coco/bbox_mAP"] == 2
    loss_rows = [row for row in run.history if "train/loss" in row]
    assert [(r["train/loss"], r["global_step"]) for r in loss_rows] == [(1.5, 1), (1.0, 4)]
    image_row = next(row for row in run.history if "val/img.width" in row)
    assert (image_row["val/img.width"], image_row["val/img.height"]) == (8, 6)
    assert any("params/w.bins" in row for row in run.history)
    assert run.summary["env"].startswith("torch ")
    assert ("config", "config") in run.artifacts
    assert any(kind == "code" for _, kind in run.artifacts)


def test_watch_logs_non_zero_gradients(run_dirs):
    work_dir, _ = run_dirs
    run = find_run(work_dir)
    grads = [row for row in run.history if any(k.startswith("gradients/") for k in row)]
    assert grads, "wandb.watch logged no gradients"
    bins = {k: v for k, v in grads[0].items() if k.startswith("gradients/") and k.endswith("bins")}
    assert bins and any(max(abs(b) for b in edges) > 0 for edges in bins.values())
