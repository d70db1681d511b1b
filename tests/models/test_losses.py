import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou, generalized_box_iou_loss, sigmoid_focal_loss

from core.errors import ConfigError
from core.models.losses import (
    CrossEntropyLoss,
    FocalLoss,
    GIoULoss,
    IoULoss,
    L1Loss,
    SmoothL1Loss,
    sparse_focal,
)


@pytest.fixture
def logits():
    return torch.randn(50, 4, generator=torch.Generator().manual_seed(0))


def test_focal_loss_equals_torchvision(logits):
    labels = torch.randint(0, 5, (50,), generator=torch.Generator().manual_seed(1))  # 4 = bg
    one_hot = torch.zeros(50, 4)
    fg = labels < 4
    one_hot[fg, labels[fg]] = 1
    expected = sigmoid_focal_loss(logits, one_hot, alpha=0.25, gamma=2.0, reduction="sum")
    loss = FocalLoss(gamma=2.0, alpha=0.25)
    torch.testing.assert_close(loss(logits, labels, avg_factor=7), expected / 7)
    torch.testing.assert_close(loss(logits, one_hot, avg_factor=7), expected / 7)
    torch.testing.assert_close(
        FocalLoss(reduction="sum", loss_weight=2.0)(logits, labels), 2 * expected
    )
    weight = (torch.arange(50) % 2).float()
    expected_weighted = (
        sigmoid_focal_loss(logits, one_hot, reduction="none") * weight[:, None]
    ).mean()
    torch.testing.assert_close(loss(logits, labels, weight=weight), expected_weighted)


def test_cross_entropy_softmax_and_sigmoid(logits):
    labels = torch.randint(0, 4, (50,), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(CrossEntropyLoss()(logits, labels), F.cross_entropy(logits, labels))
    class_weight = [1.0, 2.0, 0.5, 1.0]
    torch.testing.assert_close(
        CrossEntropyLoss(class_weight=class_weight, reduction="sum")(logits, labels),
        F.cross_entropy(logits, labels, weight=torch.tensor(class_weight), reduction="sum"),
    )
    binary = F.one_hot(labels, 4).float()
    torch.testing.assert_close(
        CrossEntropyLoss(use_sigmoid=True)(logits, labels),
        F.binary_cross_entropy_with_logits(logits, binary),
    )


def test_regression_losses():
    generator = torch.Generator().manual_seed(3)
    pred, target = torch.randn(10, 4, generator=generator), torch.randn(10, 4, generator=generator)
    torch.testing.assert_close(
        L1Loss(loss_weight=0.5)(pred, target, avg_factor=4), 0.5 * (pred - target).abs().sum() / 4
    )
    torch.testing.assert_close(
        SmoothL1Loss(beta=0.5)(pred, target), F.smooth_l1_loss(pred, target, beta=0.5)
    )
    assert L1Loss(reduction="none")(pred, target).shape == (10, 4)
    with pytest.raises(ValueError, match="avg_factor"):
        L1Loss(reduction="sum")(pred, target, avg_factor=3)
    empty = torch.zeros(0, 4, requires_grad=True)
    assert L1Loss()(empty, torch.zeros(0, 4)).item() == 0.0


def test_giou_loss_equals_torchvision():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 20.0, 30.0]])
    b = torch.tensor([[2.0, 2.0, 12.0, 12.0], [30.0, 30.0, 40.0, 45.0]])
    expected = generalized_box_iou_loss(a, b, reduction="none")
    torch.testing.assert_close(GIoULoss(reduction="none")(a, b), expected)
    torch.testing.assert_close(GIoULoss(loss_weight=2.0)(a, b, avg_factor=1), 2 * expected.sum())


def _one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    one_hot = torch.zeros(len(labels), num_classes, dtype=torch.float64)
    fg = labels < num_classes
    one_hot[fg, labels[fg]] = 1
    return one_hot


@pytest.mark.parametrize(
    ("alpha", "gamma", "weighted"), [(0.25, 2.0, False), (0.25, 2.0, True), (-1.0, 1.5, True)]
)
def test_sparse_focal_loss_value_and_gradient_equal_torchvision(
    monkeypatch, alpha, gamma, weighted
):
    # Small blocks, so that the blocked dense pass has several blocks and a remainder.
    monkeypatch.setattr(sparse_focal, "BLOCK_ROWS", 7)
    generator = torch.Generator().manual_seed(3)
    logits = (torch.randn(40, 6, generator=generator, dtype=torch.float64) * 4).requires_grad_()
    labels = torch.randint(0, 7, (40,), generator=generator)  # 6 = background
    # Row weights as a head gives them: 0 for ignored priors (positives among them too).
    row_weight = (torch.arange(40) % 3 != 0).double() if weighted else None
    elementwise = sigmoid_focal_loss(logits, _one_hot(labels, 6), alpha, gamma, reduction="none")
    expected = (elementwise * (1 if row_weight is None else row_weight[:, None])).sum()
    loss = sparse_focal.sparse_sigmoid_focal_loss_sum(logits, labels, alpha, gamma, row_weight)
    torch.testing.assert_close(loss, expected)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    (grad,) = torch.autograd.grad(loss, logits)
    torch.testing.assert_close(grad, expected_grad)
    assert torch.autograd.gradcheck(
        lambda x: sparse_focal.sparse_sigmoid_focal_loss_sum(x, labels, alpha, gamma, row_weight),
        (logits,),
    )


def test_sparse_focal_loss_all_background_and_empty():
    logits = torch.randn(30, 3, generator=torch.Generator().manual_seed(4), requires_grad=True)
    background = torch.full((30,), 3)
    expected = sigmoid_focal_loss(logits, torch.zeros(30, 3), reduction="sum")
    torch.testing.assert_close(FocalLoss(reduction="sum")(logits, background), expected)
    empty = torch.zeros(0, 3, requires_grad=True)
    loss = FocalLoss()(empty, torch.zeros(0, dtype=torch.long), avg_factor=1.0)
    loss.backward()
    assert loss.item() == 0.0
    assert empty.grad.shape == (0, 3)


def test_iou_loss_hand_case_and_torchvision_reference():
    pred, target = torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 0, 3, 2]])  # IoU 1/3
    assert IoULoss("square")(pred, target).item() == pytest.approx(8 / 9)
    assert IoULoss("linear")(pred, target).item() == pytest.approx(2 / 3)
    assert IoULoss("log")(pred, target).item() == pytest.approx(math.log(3))
    gen = torch.Generator().manual_seed(0)
    corner = torch.rand(20, 2, generator=gen) * 10
    boxes1 = torch.cat([corner, corner + 1 + torch.rand(20, 2, generator=gen) * 5], 1)
    boxes2 = boxes1 + torch.randn(20, 4, generator=gen)
    boxes2[:, 2:] = torch.maximum(boxes2[:, 2:], boxes2[:, :2] + 0.5)
    iou = box_iou(boxes1, boxes2).diagonal()
    weight = torch.rand(20, generator=gen)
    loss = IoULoss("square", loss_weight=5.0)(boxes1, boxes2, weight=weight, avg_factor=7.0)
    torch.testing.assert_close(loss, 5.0 * ((1 - iou ** 2) * weight).sum() / 7.0)
    with pytest.raises(ConfigError, match="mode"):
        IoULoss("cube")
