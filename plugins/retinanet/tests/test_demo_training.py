"""A shortened run of the demo config through the engine: the loss must fall and predictions
must come out as instances in original image coordinates."""

from importlib import resources

import torch

from core.engine.full_config import load_full_config
from core.engine.losses import sum_losses
from core.engine.runner import Runner
from core.structures import Instances

DEMO = "retinanet_tinynet_fpn_demo_shapes.toml"
SHORT_RUN = [
    "train_dataloader.dataset.num_images=96",
    "train_dataloader.batch_size=8",
    "val_dataloader.dataset.num_images=8",
    "test_dataloader.dataset.num_images=8",
    "train.max_epochs=8",
    "train.val_interval=8",
    "param_schedulers.0.end=10",
    "param_schedulers.1.end=8",
    "default_hooks.checkpoint.interval=100",
]
NUM_CLASSES = 5


def fixed_batch_loss(runner: Runner, batch) -> float:
    with torch.no_grad():
        return float(sum_losses(runner.model.loss(batch))[0])


def test_short_demo_run_learns_and_predicts(tmp_path, monkeypatch):
    monkeypatch.setenv("PLUGDET_CACHE", str(tmp_path / "cache"))
    config = str(resources.files("plugdet_retinanet") / "configs" / DEMO)
    cfg = load_full_config(config, SHORT_RUN)
    runner = Runner.from_config(cfg, work_dir=str(tmp_path / "run"), config_path=config)
    batch = next(iter(runner.train_loader)).to(runner.device)
    before = fixed_batch_loss(runner, batch)
    runner.train()
    runner.model.train()
    after = fixed_batch_loss(runner, batch)
    assert after < 0.75 * before, (before, after)
    assert runner.message_hub.get_scalar("train/num_pos").current() > 0

    runner.model.eval()
    val_batch = next(iter(runner.val_loader))
    predictions = runner.model.predict(val_batch.to(runner.device))
    assert len(predictions) == len(val_batch.samples)
    for pred, sample in zip(predictions, val_batch.samples, strict=True):
        assert isinstance(pred, Instances) and pred.scores is not None
        assert pred.boxes.shape == (len(pred), 4)
        height, width = sample.ori_shape
        assert (pred.boxes[:, 0::2] <= width).all() and (pred.boxes[:, 1::2] <= height).all()
        assert ((pred.labels >= 0) & (pred.labels < NUM_CLASSES)).all()
    assert sum(len(p) for p in predictions) > 0
