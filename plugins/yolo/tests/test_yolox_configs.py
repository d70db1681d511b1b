"""The shipped YOLOX configs: published sizes, the recipe, and the demo through the engine
(a one-iteration smoke run; the full demo, slow, must reach a COCO bbox_mAP_50 of 0.9)."""

from importlib import resources

import pytest

from core.engine.full_config import load_full_config
from core.engine.runner import Runner
from core.plugins import get_registries
from core.structures import Instances
from core.tools.model_info import format_info, model_info

CONFIGS = resources.files("plugdet_yolo") / "configs"
#: Published parameter counts with 80 classes (YOLOX's model zoo: 5.06 M and 9.0 M).
PUBLISHED = {"tiny": 5.06e6, "s": 9.0e6}
WIDEN = {"tiny": 0.375, "s": 0.5}
PARAM_TOLERANCE = 0.02
DEMO = "yolox_tiny_demo_shapes.toml"
DEMO_CLASSES = 5
ONE_ITERATION = [
    "train_dataloader.dataset.num_images=8",
    "train_dataloader.batch_size=8",
    "val_dataloader.dataset.num_images=4",
    "test_dataloader.dataset.num_images=4",
    "train.max_epochs=1",
    "train.val_interval=1",
    "param_schedulers.0.end=1",
    "param_schedulers.1.end=1",
    "custom_hooks.1.close_mosaic_epochs=1",
    "default_hooks.checkpoint.interval=100",
]
MIN_MAP_50 = 0.9


def load(name, overrides=()):
    return load_full_config(str(CONFIGS / name), list(overrides))


@pytest.mark.parametrize("size", ["tiny", "s"])
def test_coco_models_have_the_published_size(size):
    cfg = load(f"yolox_{size}_300e_coco.toml")
    info = model_info(cfg, (640, 640), depth=1)
    print(f"\nyolox_{size} at 640x640 (FLOPs = 2 x multiply-adds):\n" + format_info(info))
    assert abs(info.params / PUBLISHED[size] - 1) < PARAM_TOLERANCE
    model = get_registries().build("detector", cfg["model"], path="model")
    assert model.head.num_classes == 80 and not model.head.use_l1
    widen = WIDEN[size]
    assert model.backbone.widen_factor == widen
    assert model.neck.out_channels == model.head.in_channels == [
        int(c * widen) for c in (256, 512, 1024)]
    assert type(model.head.assigner).__name__ == "SimOTAAssigner"
    assert model.head.assigner.center_radius == 2.5
    assert model.head.prior_generator.offset == model.head.bbox_coder.prior_offset == 0.5
    assert (model.head.loss_bbox.mode, model.head.loss_bbox.loss_weight) == ("square", 5.0)


def test_coco_configs_are_the_published_recipe():
    for size in ("tiny", "s"):
        cfg = load(f"yolox_{size}_300e_coco.toml")
        optim = cfg["optim"]
        assert (optim["type"], optim["lr"], optim["momentum"], optim["weight_decay"],
                optim["nesterov"]) == ("SGD", 0.01, 0.9, 0.0005, True)
        assert optim["paramwise"] == {"norm_decay_mult": 0.0, "bias_decay_mult": 0.0}
        assert cfg["train"]["max_epochs"] == 300
        ema, switch = cfg["custom_hooks"]
        assert ema["type"] == "EMAHook"
        assert switch["type"] == "ModeSwitchHook" and switch["close_mosaic_epochs"] == 15
        assert switch["model_attributes"] == {"head.use_l1": True}
        cosine = cfg["param_schedulers"][1]
        assert (cosine["type"], cosine["end"]) == ("Cosine", 300 - 15)
        train = [t["type"] for t in cfg["train_dataloader"]["dataset"]["pipeline"]]
        assert train[:3] == ["LoadImage", "Mosaic", "RandomAffine"]
        assert ("MixUp" in train) == (size == "s")  # tiny is published without mixup
        switched = {t["type"] for t in switch["switch_pipeline"]}
        assert not switched & {"Mosaic", "RandomAffine", "MixUp"}


def demo_runner(tmp_path, monkeypatch, overrides):
    monkeypatch.setenv("PLUGDET_CACHE", str(tmp_path / "cache"))
    config = str(CONFIGS / DEMO)
    return Runner.from_config(load(DEMO, overrides), work_dir=str(tmp_path / "run"),
                              config_path=config)


def test_one_iteration_of_the_demo_trains_and_predicts(tmp_path, monkeypatch):
    runner = demo_runner(tmp_path, monkeypatch, ONE_ITERATION)
    runner.train()
    hub = runner.message_hub
    assert hub.get_scalar("train/num_pos").current() > 0
    for key in ("train/loss_cls", "train/loss_bbox", "train/loss_obj", "train/loss_l1"):
        assert hub.get_scalar(key).current() > 0
    runner.model.eval()
    val_batch = next(iter(runner.val_loader))
    predictions = runner.model.predict(val_batch.to(runner.device))
    assert len(predictions) == len(val_batch.samples)
    for pred in predictions:
        assert isinstance(pred, Instances) and pred.boxes.shape == (len(pred), 4)
        assert ((pred.labels >= 0) & (pred.labels < DEMO_CLASSES)).all()


@pytest.mark.slow  # 2 min of CPU (OMP_NUM_THREADS=1); 2 to 8 min wall time under load
def test_full_demo_reaches_the_map_target(tmp_path, monkeypatch):
    runner = demo_runner(tmp_path, monkeypatch, [])
    runner.train()
    assert runner.model.head.use_l1  # the last 5 epochs trained with the L1 loss
    assert runner.val()["coco/bbox_mAP_50"] >= MIN_MAP_50
