"""CIoU loss, distribution focal loss and soft-target sigmoid cross-entropy."""

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import complete_box_iou_loss

from core.contracts import Loss, missing_members
from core.models.losses import CIoULoss, CrossEntropyLoss, DistributionFocalLoss


def direct_ciou_loss(a, b):
    """1 - CIoU of two xyxy boxes from the formula."""
    inter = (max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
             * max(0.0, min(a[3], b[3]) - max(a[1], b[1])))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    iou = inter / union
    rho2 = ((a[0] + a[2] - b[0] - b[2]) / 2) ** 2 + ((a[1] + a[3] - b[1] - b[3]) / 2) ** 2
    c2 = (max(a[2], b[2]) - min(a[0], b[0])) ** 2 + (max(a[3], b[3]) - min(a[1], b[1])) ** 2
    v = 4 / math.pi ** 2 * (math.atan((b[2] - b[0]) / (b[3] - b[1]))
                            - math.atan((a[2] - a[0]) / (a[3] - a[1]))) ** 2
    return 1 - iou + rho2 / c2 + v / (1 - iou + v) * v


def random_box_pairs(count, seed=0):
    generator = torch.Generator().manual_seed(seed)
    xy = torch.rand(count, 2, 2, generator=generator) * 50
    wh = torch.rand(count, 2, 2, generator=generator) * 40 + 1
    boxes = torch.cat([xy, xy + wh], dim=-1)
    return boxes[:, 0], boxes[:, 1]


def test_ciou_loss_hand_computed_formula_and_torchvision():
    loss = CIoULoss()
    assert missing_members(Loss, loss) == []
    # same centre, half the height: IoU 1/2, no distance, v = 4/pi^2 (atan 1 - atan 2)^2
    pred, target = torch.tensor([[0.0, 10, 40, 30]]), torch.tensor([[0.0, 0, 40, 40]])
    v = 4 / math.pi ** 2 * (math.atan(1.0) - math.atan(2.0)) ** 2
    assert float(loss(pred, target)) == pytest.approx(0.5 + v * v / (0.5 + v), abs=1e-6)
    pred, target = random_box_pairs(40)
    weight = torch.rand(40, generator=torch.Generator().manual_seed(1))
    expected = torch.tensor([direct_ciou_loss(p.tolist(), t.tolist())
                             for p, t in zip(pred, target, strict=True)])
    elementwise = CIoULoss(reduction="none")(pred, target)
    assert torch.allclose(elementwise, expected.float(), atol=1e-5)
    assert torch.allclose(elementwise, complete_box_iou_loss(pred, target))
    weighted = CIoULoss(loss_weight=7.5)(pred, target, weight=weight, avg_factor=3.0)
    assert float(weighted) == pytest.approx(7.5 * float((expected * weight).sum()) / 3.0,
                                            rel=1e-5)
    empty = torch.zeros((0, 4), requires_grad=True)
    zero = loss(empty, torch.zeros((0, 4)))
    zero.backward()
    assert float(zero.detach()) == 0.0 and empty.grad is not None


def test_distribution_focal_loss_hand_computed_and_direct_formula():
    loss = DistributionFocalLoss(reduction="none")
    assert missing_members(Loss, loss) == []
    # uniform logits over 4 bins: CE = log 4 to every bin, whatever the weights
    uniform = torch.zeros(2, 4)
    assert loss(uniform, torch.tensor([0.0, 2.5])).tolist() == pytest.approx([math.log(4)] * 2)
    # t = 1.25: 0.75 * CE(bin 1) + 0.25 * CE(bin 2)
    logits = torch.tensor([[0.0, 2.0, 1.0, -1.0]])
    log_p = F.log_softmax(logits, dim=1)[0]
    expected = -(0.75 * log_p[1] + 0.25 * log_p[2])
    assert float(loss(logits, torch.tensor([1.25]))) == pytest.approx(float(expected))
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(30, 16, generator=generator)
    target = torch.rand(30, generator=generator) * (16 - 1 - 0.01)
    weight = torch.rand(30, generator=generator)
    log_p = F.log_softmax(logits, dim=1)
    direct = []
    for row, t in enumerate(target.tolist()):
        left = math.floor(t)
        direct.append(-((left + 1 - t) * log_p[row, left] + (t - left) * log_p[row, left + 1]))
    direct = torch.stack(direct)
    assert torch.allclose(loss(logits, target), direct, atol=1e-5)
    mean = DistributionFocalLoss(loss_weight=1.5)(logits, target, weight, avg_factor=4.0)
    assert float(mean) == pytest.approx(1.5 * float((direct * weight).sum()) / 4.0, rel=1e-5)


def test_sigmoid_cross_entropy_takes_soft_targets():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 3, generator=generator)
    soft = torch.zeros(6, 3)
    soft[0, 1], soft[3, 2] = 0.7, 0.25
    loss = CrossEntropyLoss(use_sigmoid=True, reduction="sum")(logits, soft)
    direct = -(soft * F.logsigmoid(logits) + (1 - soft) * F.logsigmoid(-logits)).sum()
    assert float(loss) == pytest.approx(float(direct), rel=1e-6)
    # one-hot soft targets equal integer labels (3 = background)
    labels = torch.tensor([1, 3, 0, 2, 3, 3])
    hard = F.one_hot(labels, 4)[:, :3].float()
    ce = CrossEntropyLoss(use_sigmoid=True)
    assert float(ce(logits, hard, avg_factor=2.0)) == pytest.approx(
        float(ce(logits, labels, avg_factor=2.0)))
