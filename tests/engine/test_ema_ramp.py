"""EMAHook's momentum ramp (YOLO recipe): the formula, the average it keeps, and resume."""

import math

import pytest
import torch
from engine_toy import toy_config

from core.engine.hooks import EMAHook, Hook
from core.engine.runner import Runner
from core.errors import ConfigError


class WeightRecorder(Hook):
    """Keeps the model weights at the start and after every iteration (runs after EMAHook)."""

    priority = 100

    def __init__(self) -> None:
        self.weights = []

    def before_run(self, runner):
        self.weights.append({k: v.clone() for k, v in runner.model.state_dict().items()})

    def after_train_iter(self, runner, batch_idx, batch, outputs):
        self.weights.append({k: v.clone() for k, v in runner.model.state_dict().items()})


def test_ramp_formula_at_a_few_update_counts():
    hook = EMAHook(momentum=0.0001, ramp_tau=2000)
    for update in (1, 10, 2000, 20000, 10**6):
        decay = 0.9999 * (1 - math.exp(-update / 2000))  # weight of the average
        assert hook.momentum_at(update) == pytest.approx(1 - decay, rel=1e-12)
    assert hook.momentum_at(1) == pytest.approx(0.99950, abs=1e-5)  # nearly a copy at first
    assert hook.momentum_at(2000) == pytest.approx(1 - 0.9999 * (1 - math.exp(-1)))
    assert hook.momentum_at(10**6) == pytest.approx(0.0001)  # the floor
    assert EMAHook(momentum=0.0002).momentum_at(1) == 0.0002  # no ramp: fixed, as before
    with pytest.raises(ConfigError, match="ramp_tau"):
        EMAHook(ramp_tau=-1)


def _run(tmp_path, name, ema, recorder=None, **overrides):
    runner = Runner.from_config(toy_config(custom_hooks=[{"type": "EMAHook", **ema}], **overrides),
                                work_dir=str(tmp_path / name))
    if recorder is not None:
        runner.hooks.append(recorder)
    runner.train()
    return next(h for h in runner.hooks if isinstance(h, EMAHook)), runner


def test_ramped_average_follows_the_recursion_and_leaves_the_initial_weights(tmp_path):
    recorder = WeightRecorder()
    hook, runner = _run(tmp_path, "ramp", {"momentum": 0.0001, "ramp_tau": 2000}, recorder)
    initial, steps = recorder.weights[0], recorder.weights[1:]
    assert len(steps) == runner.iter == 8
    key = "head.weight"
    expected = initial[key].clone()
    for update, weights in enumerate(steps, start=1):  # direct reference of the recursion
        m = 0.0001 + (1 - 0.0001) * math.exp(-update / 2000)
        expected = (1 - m) * expected + m * weights[key]
    torch.testing.assert_close(hook.ema_state[key], expected)
    final = steps[-1][key]
    moved = (final - initial[key]).norm()
    # 8 updates of a 2000-iteration ramp: the average sits next to the trained weights
    assert (hook.ema_state[key] - final).norm() < 0.05 * moved
    fixed, _ = _run(tmp_path, "fixed", {"momentum": 0.0002})
    # the fixed small momentum barely leaves the initial weights (why validation scored 0)
    assert (fixed.ema_state[key] - initial[key]).norm() < 0.01 * moved


def test_ramp_resumes_exactly(tmp_path):
    ema = {"momentum": 0.0001, "ramp_tau": 5}
    straight, _ = _run(tmp_path, "straight", ema)
    _run(tmp_path, "first", ema, train={"max_epochs": 1, "val_interval": 1})
    resumed = Runner.from_config(
        toy_config(custom_hooks=[{"type": "EMAHook", **ema}]), work_dir=str(tmp_path / "second"))
    resumed.train(resume_from=tmp_path / "first" / "epoch_1.pth")
    hook = next(h for h in resumed.hooks if isinstance(h, EMAHook))
    for key, value in straight.ema_state.items():
        assert torch.equal(hook.ema_state[key], value), key
