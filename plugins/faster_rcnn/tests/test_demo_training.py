"""A shortened run of the demo config through the engine: the loss must fall, both stages'
positive counts are logged, and predictions come out in original image coordinates."""

from importlib import resources

import torch

from core.config import load_config
from core.data.threads import single_threaded
from core.engine.losses import sum_losses
from core.engine.runner import Runner
from core.structures import Instances

DEMO = "faster_rcnn_tinynet_fpn_demo_shapes.toml"
SHORT_RUN = [
    "train_dataloader.dataset.num_images=64",
    "train_dataloader.batch_size=8",
    "val_dataloader.dataset.num_images=8",
    "test_dataloader.dataset.num_images=8",
    "train.max_epochs=4",
    "train.val_interval=4",
    "param_schedulers.0.end=8",
    "param_schedulers.1.end=4",
    "default_hooks.checkpoint.interval=100",
]
NUM_CLASSES = 5


def fixed_batch_loss(runner: Runner, batch) -> float:
    torch.manual_seed(0)  # the same sampled anchors and RoIs before and after
    with torch.no_grad():
        return float(sum_losses(runner.model.loss(batch))[0])


def test_short_demo_run_learns_and_predicts(tmp_path, monkeypatch):
    monkeypatch.setenv("PLUGDET_CACHE", str(tmp_path / "cache"))
    config = str(resources.files("plugdet_faster_rcnn") / "configs" / DEMO)
    cfg = load_config(config, SHORT_RUN)
    runner = Runner.from_config(cfg, work_dir=str(tmp_path / "run"), config_path=config)
    batch = next(iter(runner.train_loader)).to(runner.device)
    before = fixed_batch_loss(runner, batch)
    with single_threaded():  # small images: intra-op threads only contend on a busy machine
        runner.train()
    runner.model.train()
    after = fixed_batch_loss(runner, batch)
    assert after < 0.75 * before, (before, after)
    assert runner.message_hub.get_scalar("train/rpn_num_pos").current() > 0
    assert runner.message_hub.get_scalar("train/roi_num_pos").current() > 0

    runner.model.eval()
    val_batch = next(iter(runner.val_loader))
    predictions = runner.model.predict(val_batch.to(runner.device))
    assert len(predictions) == len(val_batch.samples)
    for pred, sample in zip(predictions, val_batch.samples, strict=True):
        assert isinstance(pred, Instances) and pred.scores is not None
        height, width = sample.ori_shape
        assert (pred.boxes[:, 0::2] <= width).all() and (pred.boxes[:, 1::2] <= height).all()
        assert ((pred.labels >= 0) & (pred.labels < NUM_CLASSES)).all()
    assert sum(len(p) for p in predictions) > 0
