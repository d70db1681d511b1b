import math

import pytest
import torch

from core.engine.schedulers import ParamSchedulers
from core.errors import ConfigError

ITERS_PER_EPOCH = 10


def _lrs(entries, max_epochs=3, base_lr=1.0, resume_at=None):
    """lr used at every iteration of a run, optionally rebuilt from state at ``resume_at``."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=base_lr)
    max_iters = max_epochs * ITERS_PER_EPOCH
    schedulers = ParamSchedulers.from_config(optimizer, entries, max_epochs, max_iters)
    lrs = []
    for it in range(max_iters):
        if it == resume_at:
            state, optim_state = schedulers.state_dict(), optimizer.state_dict()
            optimizer = torch.optim.SGD([param], lr=base_lr)
            schedulers = ParamSchedulers.from_config(optimizer, entries, max_epochs, max_iters)
            schedulers.load_state_dict(state, it, it // ITERS_PER_EPOCH)
            optimizer.load_state_dict(optim_state)
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedulers.step_iter(it + 1)
        if (it + 1) % ITERS_PER_EPOCH == 0:
            schedulers.step_epoch((it + 1) // ITERS_PER_EPOCH)
    return lrs


WARMUP_STEP = [
    {"type": "LinearWarmup", "start_factor": 0.1, "by_epoch": False, "end": 4},
    {"type": "MultiStep", "milestones": [1, 2], "gamma": 0.1},
]


def test_linear_warmup_then_multistep_per_epoch():
    lrs = _lrs(WARMUP_STEP)
    assert lrs[:5] == pytest.approx([0.1, 0.325, 0.55, 0.775, 1.0])
    assert lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(0.1)
    assert lrs[19] == pytest.approx(0.1)
    assert lrs[20] == pytest.approx(0.01)


def test_resuming_the_schedule_mid_run_gives_the_same_values():
    assert _lrs(WARMUP_STEP, resume_at=2) == pytest.approx(_lrs(WARMUP_STEP))
    assert _lrs(WARMUP_STEP, resume_at=13) == pytest.approx(_lrs(WARMUP_STEP))


def test_cosine_per_iteration_after_warmup():
    lrs = _lrs([{"type": "LinearWarmup", "start_factor": 0.5, "by_epoch": False, "end": 2},
                {"type": "Cosine", "by_epoch": False, "begin": 2, "eta_min": 0.0}])
    span = 3 * ITERS_PER_EPOCH - 2
    for it in (2, 10, 20, 29):
        expected = 0.5 * (1 + math.cos(math.pi * (it - 2) / span))
        assert lrs[it] == pytest.approx(expected, abs=1e-6)


def test_poly_and_step_per_epoch():
    poly = _lrs([{"type": "Poly", "power": 2.0}], max_epochs=4)
    assert [poly[e * ITERS_PER_EPOCH] for e in range(4)] == pytest.approx(
        [(1 - e / 4) ** 2 for e in range(4)])
    step = _lrs([{"type": "Step", "step_size": 2, "gamma": 0.5}], max_epochs=4)
    assert [step[e * ITERS_PER_EPOCH] for e in range(4)] == pytest.approx([1, 1, 0.5, 0.5])


@pytest.mark.parametrize(("entry", "message"), [
    ({"type": "Exponential"}, "unknown scheduler 'Exponential'"),
    ({"type": "MultiStep"}, r"param_schedulers\[0\].milestones: required"),
    ({"type": "Cosine", "gamma": 0.1}, r"unknown keys \['gamma'\]"),
    ({"type": "Cosine", "begin": 5, "end": 2}, "begin < end"),
])
def test_bad_scheduler_configs(entry, message):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ConfigError, match=message):
        ParamSchedulers.from_config(optimizer, [entry], 3, 30)


@pytest.mark.parametrize(("end", "end_epochs", "warmup_iters"), [(4, 2, 20), (25, 2, 25),
                                                                 (None, 1, 10)])
def test_warmup_over_the_longer_of_epochs_and_iterations(end, end_epochs, warmup_iters):
    entry = {"type": "LinearWarmup", "start_factor": 0.01, "by_epoch": False,
             "end_epochs": end_epochs, **({} if end is None else {"end": end})}
    lrs = _lrs([entry])
    # the YOLO warm-up: linear from 0.01 to 1 over max(end_epochs epochs, end iterations)
    expected = [0.01 + 0.99 * min(it, warmup_iters) / warmup_iters for it in range(30)]
    assert lrs == pytest.approx(expected)


@pytest.mark.parametrize(("entry", "message"), [
    ({"type": "LinearWarmup", "by_epoch": True, "end_epochs": 1}, "only for a per-iteration"),
    ({"type": "LinearWarmup", "by_epoch": False, "end_epochs": -1}, "integer >= 0"),
    ({"type": "LinearWarmup", "by_epoch": False, "end_epochs": 1, "end": "x"}, "an integer"),
])
def test_bad_end_epochs_names_the_key(entry, message):
    with pytest.raises(ConfigError, match=rf"param_schedulers\[0\]\.end(_epochs)?: .*{message}"):
        _lrs([entry])


def test_yolo_schedule_warmup_then_linear_decay_to_lrf():
    lrs = _lrs([{"type": "LinearWarmup", "start_factor": 0.1, "by_epoch": False, "end": 5},
                {"type": "Linear", "by_epoch": True, "end_factor": 0.01}])
    # per epoch e: 1 - (1 - 0.01) * e / 3 (ultralytics' linear lf with lrf = 0.01), times warm-up
    for it in range(30):
        epoch_factor = 1 - 0.99 * (it // ITERS_PER_EPOCH) / 3
        warmup = 0.1 + 0.9 * min(it, 5) / 5
        assert lrs[it] == pytest.approx(epoch_factor * warmup)
