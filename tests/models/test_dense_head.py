"""The shared dense-head path: an outside assigner that needs predictions runs inside
RetinaHead through the documented call, and targets follow the assignment."""

from typing import ClassVar

import torch
from torchvision.ops import box_iou

from core.contracts import NEGATIVE, AssignResult, GTBatch, Predictions, Priors
from core.models.heads import flatten_levels
from core.plugins import get_registries
from core.structures import DetSample, Instances

NUM_CLASSES = 3


class BestPredictionAssigner:
    """Outside assigner: each gt's positive is the prior whose predicted box overlaps it most;
    every other prior is negative. Records what it was given."""

    uses_predictions: ClassVar[bool] = True

    def __init__(self) -> None:
        self.seen: list[Predictions | None] = []

    def assign(self, priors: Priors, gt: GTBatch, pred: Predictions | None = None
               ) -> AssignResult:
        self.seen.append(pred)
        assert pred is not None
        num_images = gt.valid.shape[0]
        gt_inds = torch.full((num_images, priors.num_priors), NEGATIVE, dtype=torch.long)
        labels = torch.full_like(gt_inds, -1)
        for image in range(num_images):
            for box in range(int(gt.num_gts[image])):
                best = box_iou(gt.boxes[image, box][None], pred.boxes[image]).argmax()
                gt_inds[image, best] = box + 1
                labels[image, best] = gt.labels[image, box]
        return AssignResult(gt_inds, torch.zeros(gt_inds.shape), labels, gt.num_gts)


def build_head(assigner):
    return get_registries().build("head", {
        "type": "RetinaHead", "num_classes": NUM_CLASSES, "in_channels": 8,
        "feat_channels": 8, "stacked_convs": 1,
        "prior_generator": {"type": "AnchorGenerator", "strides": [8, 16], "ratios": [1.0],
                            "scales_per_octave": 1},
        "assigner": assigner,
    }, "model.head")


def samples():
    return [
        DetSample(img_shape=(64, 64), pad_shape=(64, 64),
                  gt=Instances(torch.tensor([[4.0, 4, 30, 28], [30, 30, 60, 62]]),
                               torch.tensor([0, 2]))),
        DetSample(img_shape=(64, 64), pad_shape=(64, 64),
                  gt=Instances(torch.tensor([[10.0, 8, 40, 50]]), torch.tensor([1]))),
    ]


def test_outside_assigner_gets_detached_predictions_and_decides_the_positives():
    torch.manual_seed(0)
    assigner = BestPredictionAssigner()
    head = build_head(assigner)
    feats = (torch.randn(2, 8, 8, 8), torch.randn(2, 8, 4, 4))
    losses = head.loss(feats, samples())
    (pred,) = assigner.seen
    num_priors = 8 * 8 + 4 * 4
    assert pred.scores.shape == (2, num_priors, NUM_CLASSES)
    assert pred.boxes.shape == (2, num_priors, 4)
    assert not pred.scores.requires_grad and not pred.boxes.requires_grad
    cls_scores, bbox_preds = head(feats)
    priors = head.priors_of(cls_scores)
    reg = flatten_levels(bbox_preds, 4)
    assert torch.allclose(pred.boxes, head.bbox_coder.decode(priors.boxes, reg))
    assert torch.allclose(pred.scores, flatten_levels(cls_scores, NUM_CLASSES).sigmoid())
    assert losses["num_pos"].item() == 3  # one positive per gt box, as the assigner chose
    (losses["loss_cls"] + losses["loss_bbox"]).backward()
    assert head.retina_reg.weight.grad.abs().sum() > 0


def test_static_assigner_gets_no_predictions_and_assignments_split_by_level():
    head = build_head({"type": "MaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.4})
    feats = (torch.randn(2, 8, 8, 8), torch.randn(2, 8, 4, 4))
    cls_scores, bbox_preds = head(feats)
    priors = head.priors_of(cls_scores)
    cls, reg = head.flat_outputs(cls_scores, bbox_preds)
    assert head.predictions(priors, cls, reg) is None
    targets = head.targets(priors, samples())
    assert targets.labels.shape == (2, priors.num_priors)
    positives = targets.sampling.pos_mask
    assert torch.equal(targets.labels[positives], targets.sampling.assign_result.labels[positives])
    assert (targets.labels[~positives] == NUM_CLASSES).all()
    ignored = targets.sampling.assign_result.ignore_mask.reshape(-1)
    assert torch.equal(targets.row_weight, ~ignored)
    assignments = head.get_assignments(feats, samples())
    assert [len(p) for p in assignments.priors] == [64, 16]
    total = sum(len(level) for image in assignments.pos_inds for level in image)
    assert total == targets.num_pos


def test_sampled_rows_are_gathered_for_the_class_loss_with_the_weighted_value():
    """A sampler counting few priors: the class loss reads only the counted rows and equals
    the loss of every row weighted by ``row_weight``; a dense assignment keeps the weights."""
    torch.manual_seed(0)
    head = get_registries().build("head", {
        "type": "RetinaHead", "num_classes": NUM_CLASSES, "in_channels": 8,
        "feat_channels": 8, "stacked_convs": 1,
        "prior_generator": {"type": "AnchorGenerator", "strides": [8, 16], "ratios": [1.0],
                            "scales_per_octave": 1},
        "sampler": {"type": "RandomSampler", "num": 8, "pos_fraction": 0.5},
    }, "model.head")
    feats = (torch.randn(2, 8, 8, 8), torch.randn(2, 8, 4, 4))
    cls_scores, bbox_preds = head(feats)
    inputs = head.loss_inputs(cls_scores, bbox_preds, samples())
    priors, cls, targets = inputs.priors, inputs.cls, inputs.targets
    counted = (targets.sampling.pos_mask | targets.sampling.neg_mask).reshape(-1)
    assert torch.equal(targets.counted_rows, counted.nonzero().flatten())
    assert targets.num_counted == int(counted.sum()) <= 16
    weighted = head.loss_cls(cls.reshape(-1, NUM_CLASSES), targets.labels.reshape(-1),
                             weight=targets.row_weight.float(), avg_factor=targets.avg_factor)
    assert torch.allclose(head.cls_loss(inputs), weighted, rtol=1e-6)
    dense = build_head({"type": "MaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.4})
    assert dense.targets(priors, samples()).counted_rows is None
