import pytest
import torch
from torch import nn

from core.engine.optim import OptimWrapper, build_optimizer
from core.errors import ConfigError


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.head = nn.Linear(4, 2)


def _groups_by_name(optimizer):
    return {name: (g["lr"], g["weight_decay"]) for g in optimizer.param_groups
            for name in g["param_names"]}


def test_paramwise_norm_bias_and_custom_keys():
    cfg = {"type": "SGD", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.01,
           "paramwise": {"norm_decay_mult": 0.0, "bias_decay_mult": 0.5,
                         "custom_keys": {"backbone.0": {"lr_mult": 0.1}}}}
    optimizer = build_optimizer(Net(), cfg)
    groups = _groups_by_name(optimizer)
    assert groups["backbone.0.weight"] == pytest.approx((0.01, 0.01))
    assert groups["backbone.0.bias"] == pytest.approx((0.01, 0.01))  # custom key wins
    assert groups["backbone.1.weight"] == pytest.approx((0.1, 0.0))  # norm
    assert groups["backbone.1.bias"] == pytest.approx((0.1, 0.0))
    assert groups["head.weight"] == pytest.approx((0.1, 0.01))
    assert groups["head.bias"] == pytest.approx((0.1, 0.005))
    assert isinstance(optimizer, torch.optim.SGD)


def test_frozen_parameters_are_left_out():
    net = Net()
    net.backbone.requires_grad_(False)
    optimizer = build_optimizer(net, {"type": "AdamW", "lr": 1e-3})
    assert set(_groups_by_name(optimizer)) == {"head.weight", "head.bias"}


@pytest.mark.parametrize(("cfg", "message"), [
    ({"type": "Sgd", "lr": 0.1}, "unknown optimizer 'Sgd'"),
    ({"type": "SGD", "lr": 0.1, "momentm": 0.9}, r"unknown keys \['momentm'\]"),
    ({"type": "SGD"}, "optim.lr: missing"),
    ({"type": "SGD", "lr": 0.1, "paramwise": {"norm_decay": 0}}, "optim.paramwise"),
])
def test_bad_optimizer_configs(cfg, message):
    with pytest.raises(ConfigError, match=message):
        build_optimizer(Net(), cfg)


def test_accumulation_matches_one_big_batch_and_clipping_reports_norm():
    torch.manual_seed(0)
    inputs, targets = torch.randn(8, 4), torch.randn(8, 2)
    reference = nn.Linear(4, 2)
    accumulated = nn.Linear(4, 2)
    accumulated.load_state_dict(reference.state_dict())

    big = OptimWrapper(torch.optim.SGD(reference.parameters(), lr=0.1))
    big.backward(nn.functional.mse_loss(reference(inputs), targets))
    big.step(lambda: None)

    wrapper = OptimWrapper(torch.optim.SGD(accumulated.parameters(), lr=0.1), accumulate=2,
                           clip_grad={"max_norm": 1e6})
    seen_grads = []
    for iteration, part in enumerate((slice(0, 4), slice(4, 8))):
        wrapper.backward(nn.functional.mse_loss(accumulated(inputs[part]), targets[part]))
        stepping = wrapper.should_step(iteration, max_iters=10)
        assert stepping == (iteration == 1)
        if stepping:
            norm = wrapper.step(lambda: seen_grads.append(accumulated.weight.grad.clone()))
    assert norm > 0
    assert accumulated.weight.grad is None  # zeroed after the step
    torch.testing.assert_close(accumulated.weight, reference.weight)
    torch.testing.assert_close(accumulated.bias, reference.bias)


def test_clipping_limits_the_gradient_norm():
    layer = nn.Linear(3, 1)
    before = torch.cat([p.detach().flatten() for p in layer.parameters()])
    wrapper = OptimWrapper(torch.optim.SGD(layer.parameters(), lr=1.0),
                           clip_grad={"max_norm": 0.5})
    wrapper.backward(layer(torch.full((1, 3), 100.0)).sum())
    norm = wrapper.step(lambda: None)
    after = torch.cat([p.detach().flatten() for p in layer.parameters()])
    assert norm == pytest.approx(float(torch.linalg.vector_norm(torch.tensor([100.0] * 3 + [1]))))
    # plain SGD with lr 1 moves the weights by exactly the clipped gradient
    assert float(torch.linalg.vector_norm(after - before)) == pytest.approx(0.5, rel=1e-4)


def test_gradients_under_the_clipping_bound_are_left_exactly_as_they_are():
    layer = nn.Linear(3, 2)
    wrapper = OptimWrapper(torch.optim.SGD(layer.parameters(), lr=0.0),
                           clip_grad={"max_norm": 1e6})
    wrapper.backward(layer(torch.ones(1, 3)).sum())
    grads = [p.grad.clone() for p in layer.parameters()]
    seen = []
    wrapper.step(lambda: None, check_grad_norm=lambda norm: seen.extend(
        p.grad.clone() for p in layer.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(grads, seen, strict=True))


class FullyTrainedNet(nn.Module):
    """Every parameter gets a real gradient: no bias in front of a normalisation, whose
    gradient would be rounding noise (its sign, and Adam's normalised step, would then follow
    the CPU's convolution kernels)."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4))
        self.head = nn.Linear(4, 2)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_fused_optimizers_step_like_the_per_parameter_loop(name):
    """``fused = true`` in ``[optim]`` reaches torch's fused kernels (one pass over all
    parameters; the default is torch's per-parameter loop on a CPU); their steps follow it.

    Both optimizers are handed the same gradients each step, so the comparison covers the
    optimizer arithmetic alone. Its bound: each step computes the update in float32 with a few
    roundings (relative error under ``16 * eps`` of a step no larger than ``lr`` in Adam,
    ``lr * |grad|`` in SGD) and one rounding of the parameter (``eps * |p|``).
    """
    torch.manual_seed(0)
    net, reference = FullyTrainedNet(), FullyTrainedNet()
    reference.load_state_dict(net.state_dict())
    steps, lr = 3, 0.01
    cfg = {"type": name, "lr": lr, "weight_decay": 0.01}
    fused = build_optimizer(net, {**cfg, "fused": True})
    looped = build_optimizer(reference, cfg)
    assert fused.defaults["fused"] is True and not looped.defaults.get("fused")
    inputs = torch.randn(2, 3, 5, 5)
    largest_grad = 0.0
    for _ in range(steps):
        fused.zero_grad()
        looped.zero_grad()
        net.head(net.backbone(inputs).mean(dim=(2, 3))).square().sum().backward()
        for mine, theirs in zip(net.parameters(), reference.parameters(), strict=True):
            assert mine.grad is not None and bool(mine.grad.abs().max() > 1e-3)
            theirs.grad = mine.grad.clone()
            largest_grad = max(largest_grad, float(mine.grad.abs().max()))
        fused.step()
        looped.step()
    eps = torch.finfo(torch.float32).eps
    largest_step = lr * (largest_grad if name == "SGD" else 1.0) * (1 + 0.01)
    for (key, value), expected in zip(net.named_parameters(), reference.parameters(),
                                      strict=True):
        torch.testing.assert_close(value, expected, rtol=steps * eps,
                                   atol=steps * 16 * eps * largest_step, msg=key)
