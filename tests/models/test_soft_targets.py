"""Classification targets by contract: a loss declares whether it takes class labels or soft
(quality) targets, a dense head gives the form its loss takes, and a head and loss that cannot
work together are refused when the model is built."""

from __future__ import annotations

from typing import ClassVar

import attrs
import pytest
import torch
from torchvision.ops import box_iou

from core.contracts import AssignResult, GTBatch, Predictions, Priors
from core.errors import ConfigError
from core.models.losses import CrossEntropyLoss, FocalLoss, QualityFocalLoss
from core.plugins import get_registries
from core.structures import DetBatch, DetSample, Instances

NUM_CLASSES = 3
ANCHORS = {"type": "AnchorGenerator", "strides": [8, 16], "ratios": [1.0],
           "scales_per_octave": 1}
MAX_IOU = {"type": "MaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.4}


class Recording:
    """Mixin: remembers the ``target`` of every call."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.targets: list[torch.Tensor] = []

    def forward(self, pred, target, weight=None, avg_factor=None):
        self.targets.append(target)
        return super().forward(pred, target, weight=weight, avg_factor=avg_factor)


class RecordingQFL(Recording, QualityFocalLoss):
    pass


class RecordingFocal(Recording, FocalLoss):
    pass


class RecordingCE(Recording, CrossEntropyLoss):
    pass


class UndeclaredLoss(torch.nn.Module):
    """A loss written before the declaration existed: no ``cls_targets``."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[torch.Tensor] = []

    def forward(self, pred, target, weight=None, avg_factor=None):
        self.targets.append(target)
        return pred.sum() * 0.0


class QualityAssigner:
    """MaxIoU positives with a given ``(B, N)`` quality (as TaskAligned or SimOTA give)."""

    uses_predictions: ClassVar[bool] = False

    def __init__(self, quality: torch.Tensor) -> None:
        self.inner = get_registries().build("assigner", MAX_IOU)
        self.quality = quality

    def assign(self, priors: Priors, gt: GTBatch, pred: Predictions | None = None
               ) -> AssignResult:
        return attrs.evolve(self.inner.assign(priors, gt, pred), quality=self.quality)


def build_head(**overrides):
    torch.manual_seed(0)
    return get_registries().build("head", {
        "type": "RetinaHead", "num_classes": NUM_CLASSES, "in_channels": 8,
        "feat_channels": 8, "stacked_convs": 1, "prior_generator": ANCHORS, **overrides,
    }, "model.head")


def samples():
    return [
        DetSample(img_shape=(64, 64), pad_shape=(64, 64),
                  gt=Instances(torch.tensor([[4.0, 4, 30, 28], [30, 30, 60, 62]]),
                               torch.tensor([0, 2]))),
        DetSample(img_shape=(64, 64), pad_shape=(64, 64),
                  gt=Instances(torch.tensor([[10.0, 8, 40, 50]]), torch.tensor([1]))),
    ]


def feats():
    generator = torch.Generator().manual_seed(1)
    return (torch.randn(2, 8, 8, 8, generator=generator),
            torch.randn(2, 8, 4, 4, generator=generator))


def shift_predictions(head) -> None:
    """Predicted boxes clearly off their anchors, so their IoU differs from the anchors'."""
    with torch.no_grad():
        head.retina_reg.bias.copy_(torch.tensor([0.15, -0.1, 0.3, -0.2]))


def test_iou_of_decoded_predictions_is_the_soft_target_without_assigner_quality():
    loss = RecordingQFL()
    head = build_head(assigner=MAX_IOU, loss_cls=loss)
    shift_predictions(head)
    x = feats()
    head.loss(x, samples())
    (target,) = loss.targets
    cls_scores, bbox_preds = head(x)
    priors = head.priors_of(cls_scores)
    _, reg = head.flat_outputs(cls_scores, bbox_preds)
    assign = head.assigner.assign(priors, GTBatch.from_samples(samples(), "cpu"))
    num_priors = priors.num_priors
    expected = torch.zeros(2 * num_priors, NUM_CLASSES)
    positives = assign.pos_mask.nonzero().tolist()
    assert len(positives) >= 3
    for image, prior in positives:  # per box: decode, IoU with its gt box
        box = head.bbox_coder.decode(priors.boxes[prior][None], reg[image, prior][None])
        gt = samples()[image].gt
        index = int(assign.gt_inds[image, prior]) - 1
        iou = box_iou(box, gt.boxes[index][None])[0, 0]
        expected[image * num_priors + prior, int(gt.labels[index])] = iou
    assert target.shape == (2 * num_priors, NUM_CLASSES)
    assert not target.requires_grad
    torch.testing.assert_close(target, expected, rtol=0, atol=1e-6)
    anchor_iou = assign.max_overlaps[assign.pos_mask]
    assert not torch.allclose(target.sum(dim=1)[assign.pos_mask.reshape(-1)], anchor_iou)


def test_the_assigners_quality_is_the_soft_target_when_it_gives_one():
    x = feats()
    num_priors = 8 * 8 + 4 * 4
    quality = torch.rand(2, num_priors, generator=torch.Generator().manual_seed(2))
    loss = RecordingQFL()
    head = build_head(assigner=QualityAssigner(quality), loss_cls=loss)
    shift_predictions(head)
    head.loss(x, samples())
    (target,) = loss.targets
    assign = head.assigner.assign(head.priors_of(head(x)[0]),
                                  GTBatch.from_samples(samples(), "cpu"))
    expected = torch.zeros(2 * num_priors, NUM_CLASSES)
    for image, prior in assign.pos_mask.nonzero().tolist():
        label = int(assign.labels[image, prior])
        expected[image * num_priors + prior, label] = quality[image, prior]
    assert torch.equal(target, expected)


def test_a_sampler_gathers_the_counted_rows_of_the_soft_targets():
    loss = RecordingQFL()
    head = build_head(loss_cls=loss, sampler={"type": "RandomSampler", "num": 8,
                                              "pos_fraction": 0.5})
    x = feats()
    losses = head.loss(x, samples())
    (target,) = loss.targets
    assert target.shape[1] == NUM_CLASSES and len(target) <= 16
    assert int((target > 0).sum()) == int(losses["num_pos"])


def test_labels_stay_the_default_and_a_loss_taking_both_gets_labels():
    for loss in (RecordingFocal(), RecordingCE(use_sigmoid=True), UndeclaredLoss()):
        head = build_head(loss_cls=loss)
        head.loss(feats(), samples())
        (target,) = loss.targets
        assert target.dtype == torch.int64 and target.dim() == 1


def test_quality_focal_loss_trains_retinanet_by_config():
    torch.manual_seed(0)
    model = get_registries().build("detector", {
        "type": "RetinaNet",
        "backbone": {"type": "TinyNet", "widths": [8, 16, 32], "depths": [1, 1, 1],
                     "out_indices": [1, 2]},
        "neck": {"type": "FPN", "in_channels": [16, 32], "out_channels": 8, "num_outs": 2},
        "head": {"type": "RetinaHead", "num_classes": NUM_CLASSES, "in_channels": 8,
                 "feat_channels": 8, "stacked_convs": 1, "prior_generator": ANCHORS,
                 "loss_cls": {"type": "QualityFocalLoss", "beta": 2.0}},
    }, "model")
    assert type(model.head.loss_cls).__name__ == "QualityFocalLoss"
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(3):
        losses = model.loss(DetBatch(images, samples()))
        assert float(losses["num_pos"]) > 0
        total = losses["loss_cls"] + losses["loss_bbox"]
        assert torch.isfinite(total)
        optimizer.zero_grad()
        total.backward()
        assert model.head.retina_cls.weight.grad.abs().sum() > 0
        optimizer.step()


def head_table(head: str, loss: dict) -> dict:
    tables = {
        "RetinaHead": {"num_classes": NUM_CLASSES, "in_channels": 8, "feat_channels": 8,
                       "stacked_convs": 1},
        "YOLOv8Head": {"num_classes": NUM_CLASSES, "widen_factor": 0.125},
        "YOLOv5Head": {"num_classes": NUM_CLASSES},
        "YOLOXHead": {"num_classes": NUM_CLASSES},
        "RTMDetHead": {"num_classes": NUM_CLASSES},
    }
    return {"type": head, **tables[head], "loss_cls": loss}


@pytest.mark.parametrize(("head", "loss", "message"), [
    ("YOLOv8Head", {"type": "FocalLoss"},
     "model.head.loss_cls: FocalLoss takes class labels, but YOLOv8Head gives soft (quality) "
     "targets; use a loss that takes soft targets, e.g. QualityFocalLoss"),
    ("RTMDetHead", {"type": "FocalLoss"},
     "model.head.loss_cls: FocalLoss takes class labels, but RTMDetHead gives soft (quality) "
     "targets; use a loss that takes soft targets, e.g. QualityFocalLoss"),
    ("YOLOXHead", {"type": "CrossEntropyLoss", "use_sigmoid": False},
     "model.head.loss_cls: CrossEntropyLoss takes class labels, but YOLOXHead gives soft "
     "(quality) targets; use a loss that takes soft targets, e.g. QualityFocalLoss"),
    ("YOLOv5Head", {"type": "QualityFocalLoss"},
     "model.head.loss_cls: QualityFocalLoss takes soft (quality) targets, but YOLOv5Head "
     "gives class labels; use a loss that takes class labels, e.g. FocalLoss"),
])
def test_a_head_and_loss_that_cannot_work_together_are_refused_naming_both(head, loss,
                                                                           message):
    with pytest.raises(ConfigError) as error:
        get_registries().build("head", head_table(head, loss), "model.head")
    assert str(error.value) == message


@pytest.mark.parametrize(("head", "loss"), [
    ("YOLOv8Head", {"type": "QualityFocalLoss"}),
    ("YOLOv8Head", {"type": "CrossEntropyLoss", "use_sigmoid": True}),
    ("YOLOXHead", {"type": "QualityFocalLoss"}),
    ("YOLOv5Head", {"type": "FocalLoss"}),
    ("RetinaHead", {"type": "QualityFocalLoss"}),
])
def test_a_head_and_loss_that_work_together_are_built(head, loss):
    built = get_registries().build("head", head_table(head, loss), "model.head")
    assert type(built.loss_cls).__name__ == loss["type"]


def test_a_loss_declaring_an_unknown_target_form_is_refused_naming_it():
    class OddLoss(UndeclaredLoss):
        cls_targets = "probabilities"

    with pytest.raises(ConfigError) as error:
        build_head(loss_cls=OddLoss())
    assert str(error.value) == (
        "model.head.loss_cls: OddLoss declares cls_targets = 'probabilities'; expected one "
        "of 'labels', 'soft', 'labels_or_soft'")


def test_the_built_in_losses_declare_what_they_take():
    assert FocalLoss.cls_targets == "labels"
    assert QualityFocalLoss.cls_targets == "soft"
    assert CrossEntropyLoss(use_sigmoid=True).cls_targets == "labels_or_soft"
    assert CrossEntropyLoss().cls_targets == "labels"
