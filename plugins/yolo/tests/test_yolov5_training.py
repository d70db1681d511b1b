"""YOLOv5 through the engine: one training iteration of every config's model in the default
run, the demo's full training as a slow test."""

import json
from importlib import resources
from pathlib import Path

import pytest
import torch

from core.config import load_config
from core.engine.losses import sum_losses
from core.engine.runner import Runner
from core.structures import Instances

CONFIGS = resources.files("plugdet_yolo") / "configs"
DEMO = "yolov5_n_demo_shapes.toml"
RACCOON = Path(__file__).parents[3] / "../shared/data/raccoon"
SHAPES_SIZE = [
    "train_dataloader.dataset.num_images=8",
    "val_dataloader.dataset.num_images=4",
    "test_dataloader.dataset.num_images=4",
]
ONE_ITERATION = [
    "train_dataloader.batch_size=4",
    "train.by_epoch=false",
    "train.max_iters=1",
    "train.val_interval=1",
    "param_schedulers=[]",
    "default_hooks.checkpoint.interval=100",
    "default_hooks.visualization=false",
    "default_hooks.curves=false",
    "default_hooks.val_plots=false",
]
MIN_DEMO_MAP_50 = 0.9
CASES = {
    "demo_shapes": (DEMO, SHAPES_SIZE, 5),
    "scratch_raccoon": ("yolov5_n_scratch_raccoon.toml", [f'data.root="{RACCOON}"'], 1),
}


@pytest.mark.parametrize("case", CASES)
def test_one_training_iteration_and_a_validation(case, tmp_path, monkeypatch):
    name, overrides, num_classes = CASES[case]
    if case == "scratch_raccoon" and not RACCOON.is_dir():
        pytest.skip(f"raccoon data set not found at {RACCOON}")
    monkeypatch.setenv("PLUGDET_CACHE", str(tmp_path / "cache"))
    config = str(CONFIGS / name)
    runner = Runner.from_config(load_config(config, ONE_ITERATION + overrides, allow_new=True),
                                work_dir=str(tmp_path / "run"), config_path=config)
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.train()
    changed = [k for k, v in runner.model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("head.convs") for k in changed)
    assert any(k.startswith("backbone") for k in changed)
    for key in ("train/loss_bbox", "train/loss_obj", "train/num_pos"):
        assert runner.message_hub.get_scalar(key).current() > 0, key
    class_loss = runner.message_hub.get_scalar("train/loss_cls").current()
    assert class_loss > 0 if num_classes > 1 else class_loss == 0

    runner.model.eval()
    batch = next(iter(runner.val_loader)).to(runner.device)
    predictions = runner.model.predict(batch)
    assert len(predictions) == len(batch.samples)
    for pred in predictions:
        assert isinstance(pred, Instances) and pred.boxes.shape == (len(pred), 4)
        assert ((pred.labels >= 0) & (pred.labels < num_classes)).all()
    with torch.no_grad():
        losses = runner.model.loss(batch)
    assert torch.isfinite(sum_losses(losses)[0])


@pytest.mark.slow
def test_demo_training_reaches_its_accuracy(tmp_path, monkeypatch):
    """The full demo (20 epochs; minutes on a CPU): bbox_mAP_50 of the last validation."""
    monkeypatch.setenv("PLUGDET_CACHE", str(tmp_path / "cache"))
    config = str(CONFIGS / DEMO)
    runner = Runner.from_config(load_config(config), work_dir=str(tmp_path / "run"),
                                config_path=config)
    runner.train()
    metric = runner.message_hub.get_scalar("val/coco/bbox_mAP_50").current()
    assert metric >= MIN_DEMO_MAP_50, json.dumps({"bbox_mAP_50": metric})
