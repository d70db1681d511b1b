"""PipelineSwitchHook: mosaic off for the last epochs, through worker processes and resume."""

import subprocess
import sys

import pytest
import torch
import yaml
from engine_toy import (
    CLI,
    cli_env,
    load_weights,
    only_run_dir,
    run_cli,
    toy_config,
    write_config,
)
from PIL import Image
from test_cli_resume import _last_checkpoint, _sigkill_when

from core.engine.checkpoint import load_checkpoint
from core.engine.hooks import Hook, PipelineSwitchHook
from core.engine.runner import Runner
from core.errors import ConfigError

MOSAIC = [{"type": "LoadImage"}, {"type": "Mosaic", "img_scale": [16, 16]},
          {"type": "Normalize"}]
PLAIN = [{"type": "LoadImage"}, {"type": "Normalize"}]


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory):
    """16 images of 16x16 in YOLO layout, each with one box covering most of it."""
    root = tmp_path_factory.mktemp("yolo")
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    for i in range(16):
        colour = (40 + 10 * i, 200 - 5 * i, 90)
        Image.new("RGB", (16, 16), colour).save(root / "images" / "train" / f"{i:02d}.png")
        (root / "labels" / "train" / f"{i:02d}.txt").write_text(f"{i % 2} 0.5 0.5 0.9 0.9\n")
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump({"path": str(root), "train": "images/train",
                                    "names": ["a", "b"]}))
    return str(path)


class Recorder(Hook):
    """Per iteration: the epoch, whether its samples are mosaics, their sizes, the losses."""

    priority = 100

    def __init__(self, stop_at: int = 0) -> None:
        self.seen, self.losses, self.stop_at = [], {}, stop_at

    def before_train_iter(self, runner, batch_idx, batch):
        self.seen.append((runner.epoch, [bool(s.meta.get("mosaic")) for s in batch.samples],
                          tuple(batch.images.shape[-2:])))

    def after_train_iter(self, runner, batch_idx, batch, outputs):
        self.losses[runner.iter] = outputs
        if runner.iter == self.stop_at:
            runner.stop_training = True


def _config(data_yaml, num_workers, switch, **overrides):
    loader = {"batch_size": 4, "shuffle": True, "num_workers": num_workers,
              "dataset": {"type": "YoloDataset", "data_yaml": data_yaml, "pipeline": MOSAIC}}
    settings = {"train": {"max_epochs": 3, "val_interval": 0}, **overrides}
    cfg = toy_config(train_dataloader=loader,
                     custom_hooks=[{"type": "PipelineSwitchHook", "switch_pipeline": PLAIN,
                                    **switch}], **settings)
    del cfg["val_dataloader"], cfg["val_evaluator"]
    return cfg


def _runner(tmp_path, name, cfg, recorder):
    runner = Runner.from_config(cfg, work_dir=str(tmp_path / name))
    runner.hooks.append(recorder)
    return runner


def test_samples_after_the_switch_epoch_come_from_the_new_pipeline(tmp_path, data_yaml):
    recorder = Recorder()
    # one persistent worker process: the switch must reach its copy of the dataset
    cfg = _config(data_yaml, 1, {"close_mosaic_epochs": 1})
    assert cfg["train_dataloader"].get("persistent_workers") is None  # default: persistent
    _runner(tmp_path, "run", cfg, recorder).train()
    by_epoch = {}
    for epoch, mosaics, shape in recorder.seen:
        by_epoch.setdefault(epoch, set()).add((tuple(mosaics), shape))
    assert by_epoch[0] == by_epoch[1] == {((True,) * 4, (32, 32))}
    assert by_epoch[2] == {((False,) * 4, (16, 16))}
    assert "epoch 3: training pipeline switched" in (tmp_path / "run" / "train.log").read_text()


def test_resumed_past_the_switch_epoch_is_exact_and_keeps_mosaic_off(tmp_path, data_yaml):
    checkpoints = {"checkpoint": {"iter_interval": 1, "max_keep": 0}}
    cfg = _config(data_yaml, 0, {"switch_epoch": 1}, default_hooks=checkpoints)
    straight = Recorder()
    _runner(tmp_path, "straight", cfg, straight).train()
    stopped = Recorder(stop_at=6)  # epoch 2 (after the switch), 2 of its 4 batches done
    _runner(tmp_path, "stopped", cfg, stopped).train()
    last = tmp_path / "stopped" / (tmp_path / "stopped" / "last_checkpoint").read_text()
    state = load_checkpoint(last)
    assert state["meta"]["iter"] == 6 and state["meta"]["iter_in_epoch"] == 2
    assert state["pipeline_switch"] == {"switched": True, "switch_epoch": 1}
    assert load_checkpoint(tmp_path / "stopped" / "epoch_1.pth")["pipeline_switch"][
        "switched"] is False
    resumed = Recorder()
    _runner(tmp_path, "resumed", cfg, resumed).train(resume_from=last)
    assert all(not any(m) and shape == (16, 16) for _, m, shape in resumed.seen)
    assert [epoch for epoch, _, _ in resumed.seen] == [1, 1, 2, 2, 2, 2]
    assert {i: resumed.losses[i] for i in range(7, 13)} == {
        i: straight.losses[i] for i in range(7, 13)}
    final, reference = (load_checkpoint(tmp_path / n / "epoch_3.pth")["state_dict"]
                        for n in ("resumed", "straight"))
    assert all(torch.equal(final[k], reference[k]) for k in reference)


def test_a_switched_checkpoint_stays_switched_under_a_later_switch_epoch(tmp_path, data_yaml):
    hook = PipelineSwitchHook(switch_pipeline=[], switch_epoch=5)
    hook.after_load_checkpoint(None, {"pipeline_switch": {"switched": True, "switch_epoch": 1}})
    assert hook._resumed_switched


def test_bad_settings_are_config_errors(tmp_path, data_yaml):
    with pytest.raises(ConfigError, match="exactly one of switch_epoch and close_mosaic"):
        PipelineSwitchHook(switch_pipeline=[])
    with pytest.raises(ConfigError, match="close_mosaic_epochs: expected >= 0"):
        PipelineSwitchHook(switch_pipeline=[], close_mosaic_epochs=-1)
    cfg = _config(data_yaml, 0, {"switch_epoch": 1}, param_schedulers=[],
                  train={"by_epoch": False, "max_iters": 2})
    with pytest.raises(ConfigError, match="needs an epoch-based run"):
        Runner.from_config(cfg, work_dir=str(tmp_path / "r")).train()


@pytest.mark.slow  # three CLI processes: about 45 s on a busy 2-core machine
def test_sigkill_after_the_switch_then_cli_resume_is_exact(tmp_path, data_yaml):
    """The CLI run with a persistent worker process, killed mid-epoch after the switch."""
    cfg = _config(data_yaml, 1, {"switch_epoch": 1},
                  default_hooks={"checkpoint": {"iter_interval": 1, "max_keep": 0}})
    config = write_config(tmp_path / "toy.toml", cfg)
    straight = run_cli(str(config), "--work-dir", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    runs = tmp_path / "runs"
    process = subprocess.Popen(
        [sys.executable, str(CLI), str(config), "--work-dir", str(runs),
         "--set-new", "--set", "model.delay=0.3"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=cli_env())
    _sigkill_when(lambda: _last_checkpoint(runs) == "iter_6.pth", process)
    run_dir = only_run_dir(runs)
    resumed_from = (run_dir / "last_checkpoint").read_text()
    state = load_checkpoint(run_dir / resumed_from)
    assert state["meta"]["epoch"] == 1 and state["pipeline_switch"]["switched"] is True
    result = run_cli(str(config), "--work-dir", str(runs), "--resume")
    assert result.returncode == 0, result.stderr
    log = (run_dir / "train.log").read_text()
    assert log.count("training pipeline switched") == 2  # before the kill and on resume
    reference = load_weights(only_run_dir(tmp_path / "straight") / "epoch_3.pth")
    final = load_weights(run_dir / "epoch_3.pth")
    assert all(torch.equal(final[k], reference[k]) for k in reference)
