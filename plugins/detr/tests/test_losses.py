"""Varifocal loss against its formula per element; L1 and GIoU against torchvision per pair."""

import math

import pytest
import torch
from plugdet_detr.losses import giou_box_loss, l1_box_loss, matched_iou, varifocal_loss
from torchvision.ops import box_convert, box_iou, generalized_box_iou


def _vfl_by_formula(logits, one_hot, quality, num_boxes, alpha, gamma):
    """Sum over images and classes of the mean over queries, times Q, over num_boxes."""
    num_images, num_queries, num_classes = logits.shape
    total = 0.0
    for b in range(num_images):
        for c in range(num_classes):
            column = 0.0
            for q in range(num_queries):
                x, hot = float(logits[b, q, c]), float(one_hot[b, q, c])
                p = 1 / (1 + math.exp(-x))
                t = float(quality[b, q]) * hot
                weight = alpha * p ** gamma * (1 - hot) + t
                column += weight * -(t * math.log(p) + (1 - t) * math.log(1 - p))
            total += column / num_queries
    return total * num_queries / num_boxes


def _vfl_case(seed):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 5, 3, generator=generator, dtype=torch.float64) * 2
    classes = torch.randint(4, (2, 5), generator=generator)  # 3 = unmatched
    one_hot = torch.nn.functional.one_hot(classes, 4)[..., :3].double()
    quality = torch.rand(2, 5, generator=generator, dtype=torch.float64) * (classes < 3)
    return logits, one_hot, quality


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("alpha", "gamma"), [(0.75, 2.0), (0.5, 1.5)])
def test_varifocal_loss_is_its_formula(seed, alpha, gamma):
    logits, one_hot, quality = _vfl_case(seed)
    loss = varifocal_loss(logits, one_hot, quality, 3.0, alpha, gamma)
    expected = _vfl_by_formula(logits, one_hot, quality, 3.0, alpha, gamma)
    assert float(loss) == pytest.approx(expected, rel=1e-9)


def test_varifocal_weight_is_not_differentiated():
    logits, one_hot, quality = _vfl_case(4)
    logits.requires_grad_(True)
    varifocal_loss(logits, one_hot, quality, 2.0).backward()
    p = logits.detach().sigmoid()
    target = quality[..., None] * one_hot
    weight = 0.75 * p.pow(2.0) * (1 - one_hot) + target
    # d/dx of weight * BCE with the weight held fixed; the mean over Q times Q cancels
    torch.testing.assert_close(logits.grad, weight * (p - target) / 2.0)


def _pairs(seed, count=6):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.rand(2, count, 2, generator=generator) * 0.6 + 0.2
    sizes = torch.rand(2, count, 2, generator=generator) * 0.4 + 0.02
    boxes = torch.cat([centres, sizes], dim=-1)
    return boxes[0], boxes[1]


def _xyxy(box):
    return box_convert(box[None], "cxcywh", "xyxy")


def test_matched_iou_is_torchvision_per_pair():
    boxes, gt_boxes = _pairs(0)
    expected = torch.stack([box_iou(_xyxy(a), _xyxy(b))[0, 0]
                            for a, b in zip(boxes, gt_boxes, strict=True)])
    torch.testing.assert_close(matched_iou(boxes, gt_boxes), expected)


def test_l1_and_giou_losses_are_torchvision_per_pair():
    boxes, gt_boxes = _pairs(1)
    l1 = sum(float((a - b).abs().sum()) for a, b in zip(boxes, gt_boxes, strict=True))
    giou = sum(1 - float(generalized_box_iou(_xyxy(a), _xyxy(b))[0, 0])
               for a, b in zip(boxes, gt_boxes, strict=True))
    assert float(l1_box_loss(boxes, gt_boxes, 4.0)) == pytest.approx(l1 / 4.0, rel=1e-5)
    assert float(giou_box_loss(boxes, gt_boxes, 4.0)) == pytest.approx(giou / 4.0, rel=1e-5)
    assert float(giou_box_loss(boxes, boxes, 4.0)) == pytest.approx(0.0, abs=1e-6)


def test_box_losses_without_pairs_are_zero_and_connected():
    boxes = torch.rand(3, 4, requires_grad=True)
    empty = boxes[torch.zeros(0, dtype=torch.long)]
    losses = [l1_box_loss(empty, empty.detach(), 1.0), giou_box_loss(empty, empty.detach(), 1.0)]
    assert [float(loss.detach()) for loss in losses] == [0.0, 0.0]
    sum(losses).backward()
    assert boxes.grad is not None and (boxes.grad == 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pair_losses_equal_the_diagonals_of_the_matrices(dtype):
    """Pair by pair, IoU and GIoU give the very numbers of the diagonal of torchvision's
    ``P x P`` matrices (no ``eps``), disjoint pairs included."""
    boxes, gt_boxes = (part.to(dtype) for part in _pairs(2, count=64))
    gt_boxes[:16, :2] += 0.9  # no overlap
    xyxy, gt_xyxy = (box_convert(part, "cxcywh", "xyxy") for part in (boxes, gt_boxes))
    assert torch.equal(matched_iou(boxes, gt_boxes), box_iou(xyxy, gt_xyxy).diagonal())
    giou = (1 - generalized_box_iou(xyxy, gt_xyxy).diagonal()).sum() / 3.0
    assert torch.equal(giou_box_loss(boxes, gt_boxes, 3.0), giou)
