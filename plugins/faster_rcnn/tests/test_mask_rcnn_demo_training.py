"""A shortened run of the Mask R-CNN demo config through the engine: the mask loss must fall,
and predictions carry bool masks in original image pixels."""

from importlib import resources

import torch

from core.config import load_config
from core.data.threads import single_threaded
from core.engine.runner import Runner
from core.masks import PolygonMasks

DEMO = "mask_rcnn_tinynet_fpn_demo_shapes.toml"
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


def fixed_batch_mask_loss(runner: Runner, batch) -> float:
    torch.manual_seed(0)  # the same sampled anchors and RoIs before and after
    with torch.no_grad():
        return float(runner.model.loss(batch)["loss_mask"])


def test_short_demo_run_learns_masks(tmp_path, monkeypatch):
    monkeypatch.setenv("PLUGDET_CACHE", str(tmp_path / "cache"))
    config = str(resources.files("plugdet_faster_rcnn") / "configs" / DEMO)
    cfg = load_config(config, SHORT_RUN)
    runner = Runner.from_config(cfg, work_dir=str(tmp_path / "run"), config_path=config)
    batch = next(iter(runner.train_loader)).to(runner.device)
    assert all(isinstance(s.gt.masks, PolygonMasks) for s in batch.samples)
    before = fixed_batch_mask_loss(runner, batch)
    with single_threaded():  # small images: intra-op threads only contend on a busy machine
        runner.train()
    runner.model.train()
    after = fixed_batch_mask_loss(runner, batch)
    assert after < 0.75 * before, (before, after)

    runner.model.eval()
    val_batch = next(iter(runner.val_loader))
    predictions = runner.model.predict(val_batch.to(runner.device))
    for pred, sample in zip(predictions, val_batch.samples, strict=True):
        assert isinstance(pred.masks, torch.Tensor) and pred.masks.dtype == torch.bool
        assert pred.masks.shape == (len(pred), *sample.ori_shape)
    assert any(p.masks.any() for p in predictions)
