"""QualityFocalLoss: hand-computed values, a per-element formula, the reference's
(labels, scores) formulation, weights, reductions and the gradient of the modulating factor."""

import math

import pytest
import torch
import torch.nn.functional as F

from core.models.losses import QualityFocalLoss
from core.plugins import get_registries


def element(x: float, t: float, beta: float) -> float:
    p = 1.0 / (1.0 + math.exp(-x))
    return -(t * math.log(p) + (1 - t) * math.log(1 - p)) * abs(t - p) ** beta


def test_hand_computed_values():
    loss = QualityFocalLoss(reduction="none")
    pred = torch.tensor([[0.0, 0.0, 0.0]])
    target = torch.tensor([[0.5, 1.0, 0.0]])
    # p = 1/2: target 1/2 costs nothing, targets 1 and 0 cost log 2 * (1/2) ** 2
    expected = torch.tensor([[0.0, 0.25 * math.log(2), 0.25 * math.log(2)]])
    assert torch.allclose(loss(pred, target), expected, atol=1e-7)


@pytest.mark.parametrize("beta", [2.0, 1.5])
def test_matches_the_formula_on_random_inputs(beta):
    generator = torch.Generator().manual_seed(0)
    pred = torch.randn(7, 4, generator=generator) * 3
    target = torch.rand(7, 4, generator=generator) * (torch.rand(7, 4, generator=generator) > 0.6)
    expected = sum(element(float(pred[i, j]), float(target[i, j]), beta)
                   for i in range(7) for j in range(4))
    got = QualityFocalLoss(beta=beta, loss_weight=2.0)(pred, target, avg_factor=3.0)
    assert float(got) == pytest.approx(2.0 * expected / 3.0, rel=1e-5)
    assert float(QualityFocalLoss(beta=beta, reduction="sum")(pred, target)) == pytest.approx(
        expected, rel=1e-5)


def test_equals_the_labels_and_scores_formulation():
    """The reference form: every logit as a negative ``BCE(x, 0) * p ** beta``, then the
    positive's own logit replaced by ``BCE(x, s) * |s - p| ** beta``."""
    generator = torch.Generator().manual_seed(1)
    pred = torch.randn(10, 5, generator=generator)
    labels = torch.tensor([0, 5, 3, 5, 1, 4, 5, 2, 5, 0])  # 5 = background
    scores = torch.rand(10, generator=generator)
    prob = pred.sigmoid()
    reference = F.binary_cross_entropy_with_logits(pred, torch.zeros_like(pred),
                                                   reduction="none") * prob.pow(2)
    pos = (labels < 5).nonzero().flatten()
    own = pred[pos, labels[pos]]
    reference[pos, labels[pos]] = F.binary_cross_entropy_with_logits(
        own, scores[pos], reduction="none") * (scores[pos] - own.sigmoid()).abs().pow(2)
    target = torch.zeros_like(pred)
    target[pos, labels[pos]] = scores[pos]
    assert torch.allclose(QualityFocalLoss(reduction="none")(pred, target), reference,
                          atol=1e-6)


def test_row_weights_and_gradient_through_the_modulating_factor():
    generator = torch.Generator().manual_seed(2)
    pred = torch.randn(6, 3, generator=generator, requires_grad=True)
    target = torch.rand(6, 3, generator=generator)
    weight = torch.tensor([1.0, 0.0, 1.0, 0.5, 0.0, 1.0])
    loss = QualityFocalLoss()(pred, target, weight=weight, avg_factor=2.0)
    prob = pred.sigmoid()
    direct = (F.binary_cross_entropy_with_logits(pred, target, reduction="none")
              * (target - prob).abs().pow(2) * weight[:, None]).sum() / 2.0
    assert float(loss.detach()) == pytest.approx(float(direct.detach()), rel=1e-6)
    (grad,) = torch.autograd.grad(loss, pred)
    (direct_grad,) = torch.autograd.grad(direct, pred)
    assert torch.allclose(grad, direct_grad, atol=1e-6)
    assert torch.equal(grad[1], torch.zeros(3)) and torch.equal(grad[4], torch.zeros(3))
    # a detached factor would give a different gradient
    detached = (F.binary_cross_entropy_with_logits(pred, target, reduction="none")
                * (target - prob).abs().pow(2).detach() * weight[:, None]).sum() / 2.0
    (detached_grad,) = torch.autograd.grad(detached, pred)
    assert not torch.allclose(grad, detached_grad, atol=1e-4)


def test_registered_as_a_loss():
    loss = get_registries().build("loss", {"type": "QualityFocalLoss", "beta": 2.0},
                                  path="loss_cls")
    assert isinstance(loss, QualityFocalLoss) and loss.beta == 2.0
