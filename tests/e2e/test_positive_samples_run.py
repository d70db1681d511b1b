"""Shortened demo runs with PositiveSamplesHook on and the local, TensorBoard and wandb
(offline) backends: the grids arrive at the configured steps and the assigner statistics are
logged everywhere (event files read back with TensorBoard's own reader, the wandb run file with
plugdet-wandb's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plugdet_wandb import read_offline_run
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from core.engine.full_config import load_full_config
from core.engine.runner import Runner

CONFIGS = Path(__file__).resolve().parents[2] / "plugins/retinanet/configs"
IMAGE_TAG = "train/positive_samples"
STATS = ["assign/pos_per_gt_mean", "assign/pos_per_gt_min", "assign/gt_without_pos",
         "assign/num_pos_level0", "assign/num_pos_level1", "assign/num_pos_level2"]
SHORT_RUN = [
    "train_dataloader.dataset.num_images=32",  # 4 iterations of 8 images per epoch
    "train.max_epochs=2",
    "train.val_interval=2",
    "val_dataloader.dataset.num_images=4",
    "test_dataloader.dataset.num_images=4",
    "default_hooks.logger.interval=2",
    "default_hooks.checkpoint.interval=100",
    "default_hooks.visualization=false",
    "default_hooks.curves=false",
    "default_hooks.val_plots=false",
    "default_hooks.positive_samples.enabled=true",
    "default_hooks.positive_samples.interval=3",
    'vis_backends=[{type = "LocalVisBackend"}, {type = "TensorboardVisBackend"}, '
    '{type = "WandbVisBackend", mode = "offline"}]',
]


def run_demo(config: str, tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("PLUGDET_CACHE", str(tmp_path / "cache"))
    path = str(CONFIGS / config)
    cfg = load_full_config(path, SHORT_RUN)
    run = tmp_path / "run"
    Runner.from_config(cfg, work_dir=str(run), config_path=path).train()
    return run


def check_run(run: Path) -> None:
    events = EventAccumulator(str(run / "vis_data" / "tensorboard"),
                              size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    images = events.Images(IMAGE_TAG)
    assert [image.step for image in images] == [3, 6]
    # 2 images x 3 levels of 160 px panels enlarged to 256 px, 4 px gaps
    assert {(image.width, image.height) for image in images} == {(3 * 256 + 8, 2 * 256 + 4)}
    for key in STATS:
        points = events.Scalars(f"train/{key}")
        assert [p.step for p in points] == [2, 4, 6, 8], key
    assert all(p.value == 0 for p in events.Scalars("train/assign/gt_without_pos"))
    assert all(p.value >= 1 for p in events.Scalars("train/assign/pos_per_gt_min"))
    level_sum = sum(events.Scalars(f"train/assign/num_pos_level{i}")[-1].value for i in range(3))
    assert level_sum == pytest.approx(events.Scalars("train/num_pos")[-1].value, rel=1e-5)
    local = [json.loads(line) for line in
             (run / "vis_data" / "scalars.json").read_text().splitlines()]
    assert all(f"train/{key}" in local[0] for key in STATS)
    pngs = sorted(p.name for p in (run / "vis_data" / "vis_image").glob("train_positive*"))
    assert pngs == [f"train_positive_samples_{step}.png" for step in (3, 6)]
    (wandb_dir,) = (run / "vis_data" / "wandb").glob("offline-run-*")
    history = read_offline_run(wandb_dir).history
    assert [row["global_step"] for row in history if f"{IMAGE_TAG}.width" in row] == [3, 6]
    stat_steps = [row["global_step"] for row in history if "train/assign/pos_per_gt_mean" in row]
    assert stat_steps == [2, 4, 6, 8]
    log = (run / "train.log").read_text()
    assert "assign/pos_per_gt_mean: " in log and "PositiveSamplesHook: 2 drawings" in log


def test_retinanet_demo_writes_positive_samples_and_statistics(tmp_path, monkeypatch):
    check_run(run_demo("retinanet_tinynet_fpn_demo_shapes.toml", tmp_path, monkeypatch))


@pytest.mark.slow
@pytest.mark.parametrize("config", ["retinanet_tinynet_fpn_points_simota_demo_shapes.toml",
                                    "retinanet_tinynet_fpn_points_dsl_demo_shapes.toml"])
def test_point_prior_demos_write_positive_samples_and_statistics(config, tmp_path,
                                                                 monkeypatch):
    check_run(run_demo(config, tmp_path, monkeypatch))
