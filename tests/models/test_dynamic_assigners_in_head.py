"""SimOTA and DynamicSoftLabel inside a RetinaHead with point priors, built from the config:
a few training iterations with finite losses, positives and assigner statistics."""

import pytest
import torch

from core.plugins import get_registries
from core.structures import DetSample, Instances

NUM_CLASSES = 3


def build_head(assigner: dict) -> torch.nn.Module:
    return get_registries().build("head", {
        "type": "RetinaHead", "num_classes": NUM_CLASSES, "in_channels": 8,
        "feat_channels": 8, "stacked_convs": 1,
        "prior_generator": {"type": "PointGenerator", "strides": [8, 16], "offset": 0.5},
        "bbox_coder": {"type": "LogDistancePointCoder"},
        "loss_bbox": {"type": "GIoULoss", "loss_weight": 2.0},
        "reg_decoded_bbox": True,
        "assigner": assigner,
    }, "model.head")


def samples() -> list[DetSample]:
    return [
        DetSample(img_shape=(64, 64), pad_shape=(64, 64),
                  gt=Instances(torch.tensor([[4.0, 4, 30, 28], [30, 30, 60, 62]]),
                               torch.tensor([0, 2]))),
        DetSample(img_shape=(64, 64), pad_shape=(64, 64),
                  gt=Instances(torch.zeros((0, 4)), torch.zeros(0, dtype=torch.long))),
    ]


@pytest.mark.parametrize("assigner", ["SimOTAAssigner", "DynamicSoftLabelAssigner"])
def test_point_prior_head_trains_with_a_dynamic_assigner(assigner):
    torch.manual_seed(0)
    head = build_head({"type": assigner})
    feats = (torch.randn(2, 8, 8, 8), torch.randn(2, 8, 4, 4))
    optimizer = torch.optim.SGD(head.parameters(), lr=0.01)
    before = head.retina_reg.weight.detach().clone()
    for _ in range(3):
        losses = head.loss(feats, samples())
        assert all(torch.isfinite(v) for v in losses.values())
        assert losses["num_pos"] >= 2  # every box gets at least one positive (k >= 1)
        assert losses["assign/gt_without_pos"] == 0
        assert losses["assign/num_pos_level0"] + losses["assign/num_pos_level1"] == losses[
            "num_pos"]
        optimizer.zero_grad()
        (losses["loss_cls"] + losses["loss_bbox"]).backward()
        optimizer.step()
    assert not torch.equal(before, head.retina_reg.weight)
    assignments = head.get_assignments(feats, samples())
    assert [len(p) for p in assignments.priors] == [64, 16]
    assert all(len(level) == 0 for level in assignments.pos_inds[1])  # the empty image
