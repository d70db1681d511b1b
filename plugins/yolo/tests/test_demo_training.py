"""The YOLOv8 and RTMDet demo configs through the engine: a one-iteration smoke run in the
default run and the full demo (slow), which must reach a COCO bbox_mAP_50 of at least 0.9."""

from importlib import resources

import pytest

from core.engine.full_config import load_full_config
from core.engine.runner import Runner
from core.errors import ConfigError
from core.structures import Instances

#: demo config -> the loss terms it must report
DEMOS = {
    "yolov8_n_demo_shapes.toml": ("loss_cls", "loss_bbox", "loss_dfl"),
    "rtmdet_tiny_demo_shapes.toml": ("loss_cls", "loss_bbox"),
}
NUM_CLASSES = 5
ONE_ITERATION = [
    "train_dataloader.dataset.num_images=8",
    "train_dataloader.batch_size=8",
    "val_dataloader.dataset.num_images=4",
    "test_dataloader.dataset.num_images=4",
    "train.max_epochs=1",
    "train.val_interval=1",
    "param_schedulers.0.end=1",
    "param_schedulers.1.end=1",
    "default_hooks.checkpoint.interval=100",
]
MIN_MAP_50 = 0.9


def demo_runner(tmp_path, monkeypatch, demo, overrides):
    monkeypatch.setenv("PLUGDET_CACHE", str(tmp_path / "cache"))
    config = str(resources.files("plugdet_yolo") / "configs" / demo)
    cfg = load_full_config(config, overrides)
    return Runner.from_config(cfg, work_dir=str(tmp_path / "run"), config_path=config)


@pytest.mark.parametrize("demo", sorted(DEMOS))
def test_one_iteration_of_the_demo_trains_and_predicts(tmp_path, monkeypatch, demo):
    runner = demo_runner(tmp_path, monkeypatch, demo, ONE_ITERATION)
    runner.train()
    hub = runner.message_hub
    assert hub.get_scalar("train/num_pos").current() > 0
    for key in DEMOS[demo]:
        assert hub.get_scalar(f"train/{key}").current() > 0
    runner.model.eval()
    val_batch = next(iter(runner.val_loader))
    predictions = runner.model.predict(val_batch.to(runner.device))
    assert len(predictions) == len(val_batch.samples)
    for pred in predictions:
        assert isinstance(pred, Instances) and pred.boxes.shape == (len(pred), 4)
        assert ((pred.labels >= 0) & (pred.labels < NUM_CLASSES)).all()


@pytest.mark.slow
@pytest.mark.parametrize("demo", sorted(DEMOS))
def test_full_demo_reaches_the_map_target(tmp_path, monkeypatch, demo):
    runner = demo_runner(tmp_path, monkeypatch, demo, [])
    runner.train()
    assert runner.val()["coco/bbox_mAP_50"] >= MIN_MAP_50


def test_end_of_training_test_with_test_time_augmentation(tmp_path, monkeypatch):
    """``train.test_tta`` augments the end-of-training test: its loader has the views
    (``TestTimeAug``) and the test merges them; without ``test_at_end`` it is refused."""
    from core.data.transforms.tta import TestTimeAug

    overrides = [*ONE_ITERATION, "train.test_at_end=true", "train.test_tta=true"]
    runner = demo_runner(tmp_path, monkeypatch, "yolov8_n_demo_shapes.toml", overrides)
    assert any(isinstance(t, TestTimeAug)
               for t in runner.test_loader.dataset.pipeline.transforms)
    tested = []
    real = runner.test_current
    monkeypatch.setattr(runner, "test_current",
                        lambda tta=False: tested.append(tta) or real(tta=tta))
    runner.train()
    assert tested == [True]
    with pytest.raises(ConfigError, match=r"train\.test_tta: .* needs train\.test_at_end"):
        demo_runner(tmp_path / "b", monkeypatch, "yolov8_n_demo_shapes.toml",
                    [*ONE_ITERATION, "train.test_tta=true"])
