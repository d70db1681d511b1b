"""ModeSwitchHook: YOLOX's L1 loss comes on with the pipeline switch, and stays on after a
resume at or past the switch epoch."""

from importlib import resources
from types import SimpleNamespace

import pytest
from plugdet_yolo.hooks import ModeSwitchHook

from core.data.transforms.base import Pipeline
from core.engine.checkpoint import load_checkpoint
from core.engine.full_config import load_full_config
from core.engine.hooks import Hook
from core.engine.runner import Runner
from core.errors import ConfigError

DEMO = "yolox_tiny_demo_shapes.toml"
#: 8 images in batches of 4 (2 iterations per epoch), 3 epochs, switched from epoch 1 on.
SHORT = [
    "train_dataloader.dataset.num_images=8",
    "train_dataloader.batch_size=4",
    "train.max_epochs=3",
    "train.val_interval=0",
    "param_schedulers.0.end=1",
    "param_schedulers.1.end=3",
    "custom_hooks.1.close_mosaic_epochs=2",
    "default_hooks.checkpoint.interval=1",
    "default_hooks.checkpoint.max_keep=0",
]


class Recorder(Hook):
    """Per iteration: the epoch, the head's ``use_l1`` and the logged losses."""

    priority = 100

    def __init__(self) -> None:
        self.seen = []

    def after_train_iter(self, runner, batch_idx, batch, outputs):
        self.seen.append((runner.epoch, runner.model.head.use_l1, dict(outputs)))


def run(tmp_path, monkeypatch, name, resume_from=None):
    monkeypatch.setenv("PLUGDET_CACHE", str(tmp_path / "cache"))
    config = str(resources.files("plugdet_yolo") / "configs" / DEMO)
    runner = Runner.from_config(load_full_config(config, SHORT), work_dir=str(tmp_path / name),
                                config_path=config)
    recorder = Recorder()
    runner.hooks.append(recorder)
    runner.train(resume_from=resume_from)
    return runner, recorder.seen


def test_l1_comes_on_at_the_switch_and_after_resumes(tmp_path, monkeypatch):
    _, straight = run(tmp_path, monkeypatch, "straight")
    assert [(epoch, on) for epoch, on, _ in straight] == [
        (0, False), (0, False), (1, True), (1, True), (2, True), (2, True)]
    assert all(("loss_l1" in losses) == on for _, on, losses in straight)
    work_dir = tmp_path / "straight"
    assert load_checkpoint(work_dir / "epoch_1.pth")["pipeline_switch"]["switched"] is False
    assert load_checkpoint(work_dir / "epoch_2.pth")["pipeline_switch"]["switched"] is True
    # resumed at the switch epoch (checkpoint before the switch) and past it (after it):
    # a fresh head starts with use_l1 false, the hook turns it on before the first iteration
    for checkpoint, first_epoch in (("epoch_1.pth", 1), ("epoch_2.pth", 2)):
        resumed_runner, resumed = run(tmp_path, monkeypatch, f"from_{first_epoch}",
                                      resume_from=str(work_dir / checkpoint))
        assert [(epoch, on) for epoch, on, _ in resumed] == [
            (e, True) for e in range(first_epoch, 3) for _ in range(2)]
        expected = [losses for epoch, _, losses in straight if epoch >= first_epoch]
        assert [losses for _, _, losses in resumed] == expected
        assert resumed_runner.model.head.use_l1


def fake_runner(head):
    dataset = SimpleNamespace(pipeline=Pipeline([]))
    return SimpleNamespace(by_epoch=True, train_loader=SimpleNamespace(dataset=dataset),
                           model=SimpleNamespace(head=head))


def test_bad_attribute_paths_and_empty_settings_are_config_errors():
    hook = ModeSwitchHook(switch_pipeline=[], model_attributes={"head.use_l2": True},
                          switch_epoch=1)
    with pytest.raises(ConfigError, match=r"'head\.use_l2': SimpleNamespace has no attribute"):
        hook.before_train(fake_runner(SimpleNamespace(use_l1=False)))
    hook = ModeSwitchHook(switch_pipeline=[], model_attributes={"neck.x": 1}, switch_epoch=1)
    with pytest.raises(ConfigError, match="the model has no 'neck'"):
        hook.before_train(fake_runner(SimpleNamespace(use_l1=False)))
    with pytest.raises(ConfigError, match="at least one attribute"):
        ModeSwitchHook(switch_pipeline=[], model_attributes={}, switch_epoch=1)
