"""In-process training runs of the toy detector."""

import io
import json

import pytest
import torch
from engine_toy import load_weights, toy_config

from core.engine.hooks import Hook
from core.engine.losses import NonFiniteLossError
from core.engine.runner import Runner
from core.errors import ConfigError


def _train(tmp_path, name="run", **overrides):
    runner = Runner.from_config(toy_config(**overrides), work_dir=str(tmp_path / name))
    runner.train()
    return runner


def _scalars(run_dir):
    lines = (run_dir / "vis_data" / "scalars.json").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_work_dir_contents_and_head_scalar_in_both_logs(tmp_path):
    runner = _train(tmp_path)
    run_dir = tmp_path / "run"
    assert {"config.toml", "train.log", "vis_data", "epoch_1.pth", "epoch_2.pth",
            "last_checkpoint"} <= {p.name for p in run_dir.iterdir()}
    log = (run_dir / "train.log").read_text()
    # the toy head reports num_pos = 4 boxes per batch through the MessageHub
    assert "Epoch(train) [1][2/4]" in log and "num_pos: 4.0000" in log
    train_records = [r for r in _scalars(run_dir) if "train/loss" in r]
    assert [r["step"] for r in train_records] == [2, 4, 6, 8]
    assert all(r["train/num_pos"] == 4.0 for r in train_records)
    assert {"train/lr", "train/loss_cls", "train/loss_bbox", "train/time"} <= set(
        train_records[0])
    val_records = [r for r in _scalars(run_dir) if "val/toy/iou" in r]
    assert [r["step"] for r in val_records] == [4, 8]
    assert runner.epoch == 2 and runner.iter == 8


def test_head_scalar_reaches_every_vis_backend(tmp_path):
    from engine_toy import RecordingVisBackend

    RecordingVisBackend.records.clear()
    _train(tmp_path, vis_backends=[{"type": "LocalVisBackend"}, {"type": "RecordingVisBackend"}])
    recorded = [r for r in RecordingVisBackend.records if "train/num_pos" in r]
    local = [r for r in _scalars(tmp_path / "run") if "train/num_pos" in r]
    assert recorded == local and len(recorded) == 4


def test_logged_lr_follows_the_schedule(tmp_path):
    _train(tmp_path, default_hooks={"logger": {"interval": 1}})
    lrs = {r["step"]: r["train/lr"] for r in _scalars(tmp_path / "run") if "train/lr" in r}
    # warm-up 0.1 -> 1 over 3 iterations (x base 0.1), then x0.5 after epoch 1
    expected = {1: 0.01, 2: 0.04, 3: 0.07, 4: 0.1, 5: 0.05, 8: 0.05}
    for step, lr in expected.items():
        assert lrs[step] == pytest.approx(lr), step


def test_window_mean_of_hub_scalars(tmp_path):
    class VaryingScalar(Hook):
        def before_train_iter(self, runner, batch_idx, batch):
            runner.message_hub.update_scalar("train/custom", float(runner.iter + 1))

    runner = Runner.from_config(toy_config(), work_dir=str(tmp_path / "run"))
    runner.hooks.append(VaryingScalar())
    runner.train()
    custom = [r["train/custom"] for r in _scalars(tmp_path / "run") if "train/custom" in r]
    assert custom == pytest.approx([1.5, 3.5, 5.5, 7.5])  # mean over each 2-iteration window


def test_frozen_prefixes_get_no_gradient_and_do_not_change(tmp_path):
    grads_seen = []

    class GradProbe(Hook):
        def after_backward(self, runner, batch_idx):
            grads_seen.append((runner.model.backbone[0].weight.grad,
                               runner.model.head.weight.grad))

    runner = Runner.from_config(toy_config(freeze=["backbone.0"]), work_dir=str(tmp_path / "r"))
    initial = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.hooks.append(GradProbe())
    runner.train()
    final = runner.model.state_dict()
    assert torch.equal(final["backbone.0.weight"], initial["backbone.0.weight"])
    assert torch.equal(final["backbone.0.bias"], initial["backbone.0.bias"])
    assert not torch.equal(final["head.weight"], initial["head.weight"])
    assert not torch.equal(final["backbone.1.weight"], initial["backbone.1.weight"])
    assert all(frozen is None and head is not None for frozen, head in grads_seen)


def test_unknown_freeze_prefix_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"freeze: prefix 'backbone\.9' matches no parameter"):
        Runner.from_config(toy_config(freeze=["backbone.9"]), work_dir=str(tmp_path / "r"))


def test_nan_loss_stops_with_iteration_and_terms_and_keeps_last_checkpoint(tmp_path):
    cfg = toy_config(model={"type": "ToyDetector", "nan_at_call": 6})
    runner = Runner.from_config(cfg, work_dir=str(tmp_path / "run"))
    before_nan = None
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    message = str(info.value)
    assert "iteration 6 (epoch 2)" in message
    assert "loss_bbox" in message and "loss_bbox=nan" in message and "loss_cls=" in message
    run_dir = tmp_path / "run"
    assert "non-finite loss at iteration 6" in (run_dir / "train.log").read_text()
    assert (run_dir / "last_checkpoint").read_text() == "epoch_1.pth"
    before_nan = load_weights(run_dir / "epoch_1.pth")
    assert all(torch.isfinite(v.float()).all() for v in before_nan.values())
    assert not (run_dir / "epoch_2.pth").exists()


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    try:
        first = _train(tmp_path, "a", deterministic=True).model.state_dict()
        assert torch.are_deterministic_algorithms_enabled()
        second = _train(tmp_path, "b", deterministic=True).model.state_dict()
    finally:
        torch.use_deterministic_algorithms(False)
    third = _train(tmp_path, "c", seed=4).model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["head.weight"], third["head.weight"])


def test_amp_on_cpu_runs_the_model_in_bfloat16(tmp_path):
    dtypes = []
    runner = Runner.from_config(toy_config(amp=True), work_dir=str(tmp_path / "r"))
    runner.model.backbone[0].register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    runner.train()
    assert dtypes and set(dtypes) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in runner.model.parameters())


def test_iteration_based_run_validates_and_saves_by_iteration(tmp_path):
    runner = _train(
        tmp_path, train={"by_epoch": False, "max_iters": 6, "val_interval": 3,
                         "test_at_end": True},
        param_schedulers=[{"type": "LinearWarmup", "by_epoch": False, "end": 2}],
        default_hooks={"logger": {"interval": 3}, "checkpoint": {"interval": 3}},
        test_dataloader={"batch_size": 2, "dataset": {"type": "ToyDataset", "num_images": 4,
                                                      "augment": False}})
    run_dir = tmp_path / "run"
    assert runner.iter == 6 and runner.epoch == 1  # 4 batches per pass
    assert (run_dir / "iter_3.pth").exists() and (run_dir / "iter_6.pth").exists()
    assert [r["step"] for r in _scalars(run_dir) if "val/toy/iou" in r] == [3, 6]
    assert "Iter(train) [3/6]" in (run_dir / "train.log").read_text()
    test_records = [r for r in _scalars(run_dir) if "test/toy/iou" in r]
    assert len(test_records) == 1 and test_records[0]["test/toy/num_images"] == 4.0


def test_keep_last_k_and_best_checkpoint(tmp_path):
    _train(tmp_path, train={"max_epochs": 4},
           default_hooks={"checkpoint": {"max_keep": 2, "save_best": "toy/iou"}})
    names = {p.name for p in (tmp_path / "run").glob("*.pth")}
    regular = sorted(n for n in names if n.startswith("epoch_"))
    best = [n for n in names if n.startswith("best_")]
    assert regular == ["epoch_3.pth", "epoch_4.pth"]
    assert len(best) == 1 and best[0].startswith("best_toy_iou_epoch_")


def test_ema_weights_are_used_for_validation_and_saved(tmp_path):
    runner = _train(tmp_path, custom_hooks=[{"type": "EMAHook", "momentum": 0.5}])
    checkpoint = torch.load(tmp_path / "run" / "epoch_2.pth", weights_only=True)
    ema, raw = checkpoint["ema_state_dict"], checkpoint["state_dict"]
    assert not torch.equal(ema["head.weight"], raw["head.weight"])
    # after validation the training weights are back in the model
    assert torch.equal(runner.model.state_dict()["head.weight"], raw["head.weight"])
    # the logged val metrics are those of the EMA weights
    tester = Runner.from_config(toy_config(), work_dir=str(tmp_path / "t"), mode="test")
    torch.save({"state_dict": ema}, tmp_path / "ema_only.pth")
    ema_metrics = tester.test(tmp_path / "ema_only.pth")
    logged = [r for r in _scalars(tmp_path / "run") if "val/toy/iou" in r][-1]
    assert logged["val/toy/iou"] == pytest.approx(ema_metrics["toy/iou"])


def test_early_stopping_ends_the_run(tmp_path):
    runner = _train(tmp_path, train={"max_epochs": 6}, custom_hooks=[
        {"type": "EarlyStoppingHook", "monitor": "toy/num_images", "patience": 2}])
    assert runner.epoch == 3  # best at epoch 1, no improvement at epochs 2 and 3
    assert "early stopping: toy/num_images" in (tmp_path / "run" / "train.log").read_text()


def test_hooks_run_in_priority_order(tmp_path):
    calls = []

    def probe(name, priority):
        hook = Hook()
        hook.priority = priority
        hook.before_train = lambda runner: calls.append(name)
        return hook

    runner = Runner.from_config(toy_config(train={"max_epochs": 1}), work_dir=str(tmp_path / "r"))
    runner.hooks = sorted([*runner.hooks, probe("late", 95), probe("early", 5)],
                          key=lambda h: h.priority)
    runner.train()
    assert calls == ["early", "late"]


def test_custom_hook_priority_by_name_and_bad_hook_type(tmp_path):
    cfg = toy_config(custom_hooks=[{"type": "EMAHook", "priority": "VERY_LOW"}])
    runner = Runner.from_config(cfg, work_dir=str(tmp_path / "a"))
    assert [type(h).__name__ for h in runner.hooks][-2:] == ["CheckpointHook", "EMAHook"]
    runner.close()
    with pytest.raises(ConfigError, match=r"custom_hooks\[0\]\.type: unknown hook 'EMA'"):
        Runner.from_config(toy_config(custom_hooks=[{"type": "EMA"}]),
                           work_dir=str(tmp_path / "b"))


def test_unknown_top_level_and_train_keys_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="unknown top-level config keys \\['optimizer'\\]"):
        Runner.from_config(toy_config(optimizer={}), work_dir=str(tmp_path / "a"))
    with pytest.raises(ConfigError, match="train: unknown keys \\['epochs'\\]"):
        Runner.from_config(toy_config(train={"epochs": 3}), work_dir=str(tmp_path / "b"))


def test_progress_bar_on_a_terminal(tmp_path, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    monkeypatch.setenv("COLUMNS", "200")
    _train(tmp_path)
    shown = terminal.getvalue()
    assert "\r[" in shown and "it/s" in shown and "eta 0:00:" in shown and "lr " in shown
    assert "loss_cls" in shown and "mem " in shown
    assert "Epoch(train)" not in shown  # interval lines go to the log file only
    assert "Epoch(train) [2][4/4]" in (tmp_path / "run" / "train.log").read_text()


def test_sync_bn_needs_cuda():
    from engine_toy import ToyDetector

    from core.engine.model_wrapper import wrap_for_training

    with pytest.raises(ConfigError, match="sync_bn: SyncBatchNorm needs CUDA"):
        wrap_for_training(ToyDetector(), torch.device("cpu"), distributed=True, sync_bn=True,
                          find_unused_parameters=False)


def test_log_lines_follow_the_epoch_and_average_since_the_previous_line(tmp_path):
    class VaryingScalar(Hook):
        def before_train_iter(self, runner, batch_idx, batch):
            runner.message_hub.update_scalar("train/custom", float(runner.iter + 1))

    runner = Runner.from_config(toy_config(default_hooks={"logger": {"interval": 3}}),
                                work_dir=str(tmp_path / "run"))
    runner.hooks.append(VaryingScalar())
    runner.train()
    log = (tmp_path / "run" / "train.log").read_text()
    lines = [line for line in log.splitlines() if "Epoch(train)" in line]
    assert [line.split("Epoch(train) ")[1][:8] for line in lines] == [
        "[1][3/4]", "[1][4/4]", "[2][3/4]", "[2][4/4]"]
    custom = [r["train/custom"] for r in _scalars(tmp_path / "run") if "train/custom" in r]
    assert custom == pytest.approx([2.0, 4.0, 6.0, 8.0])


@pytest.mark.parametrize(("overrides", "message"), [
    ({"train": {"val_interval": -1}}, "train.val_interval: expected >= 0"),
    ({"train": {"max_epochs": "two"}}, "train.max_epochs: expected int, got 'two'"),
    ({"train": {"by_epoch": False}}, "train.max_iters: required"),
    ({"amp": "yes"}, "amp: expected bool"),
    ({"device": "tpu"}, "device: expected 'auto', 'cpu' or 'cuda'"),
    ({"param_schedulers": [{"type": "MultiStep", "milestones": [1]}],
      "train": {"by_epoch": False, "max_iters": 4}}, r"param_schedulers\[0\]\.by_epoch"),
])
def test_bad_run_settings_name_the_key(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        Runner.from_config(toy_config(**overrides), work_dir=str(tmp_path / "r"))


@pytest.mark.parametrize(("native", "expected"), [(True, torch.bfloat16), (False, None)])
def test_amp_auto_uses_bf16_only_on_a_cpu_that_computes_it_natively(tmp_path, monkeypatch,
                                                                    native, expected):
    from core.engine import run_config

    monkeypatch.setattr(run_config, "cpu_has_native_bf16", lambda: native)
    runner = Runner.from_config(toy_config(amp="auto"), work_dir=str(tmp_path / "r"))
    assert runner.settings.amp_dtype == expected
    runner.train()
    start = (tmp_path / "r" / "train.log").read_text()
    assert ("precision bfloat16 autocast" if native else "precision float32") in start
    assert "memory format contiguous (NCHW)" in start
