"""The ATSS head: centerness targets, the three losses as MMDetection computes them, the test
time (class scores select, the centerness multiplies) and the per-level scales."""

import math
from pathlib import Path

import pytest
import torch
from plugdet_retinanet.atss_head import ATSSHead, centerness_targets
from torch import nn
from torchvision.ops import generalized_box_iou_loss

from core.api import ConfigError, load_config
from core.plugins import get_registries
from core.structures import DetSample, Instances

CONFIG = Path(__file__).resolve().parents[1] / "configs/pretrained/atss_r50_fpn_mmdet_coco.toml"
CHANNELS = 32
SIZE = 128
STRIDES = [8, 16, 32, 64, 128]


def head(**kwargs) -> ATSSHead:
    torch.manual_seed(0)
    return ATSSHead(num_classes=3, in_channels=CHANNELS, feat_channels=CHANNELS,
                    stacked_convs=2, **kwargs)


def feats() -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(1)
    return tuple(torch.randn(2, CHANNELS, SIZE // s, SIZE // s, generator=generator)
                 for s in STRIDES)


def samples(gts: list[Instances]) -> list[DetSample]:
    return [DetSample(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE), pad_shape=(SIZE, SIZE),
                      gt=gt) for gt in gts]


GTS = [Instances(torch.tensor([[10.0, 20.0, 70.0, 90.0]]), torch.tensor([1])),
       Instances(torch.tensor([[40.0, 30.0, 120.0, 100.0], [5.0, 5.0, 30.0, 40.0]]),
                 torch.tensor([0, 2]))]


def test_centerness_targets():
    anchors = torch.tensor([[40.0, 40.0, 60.0, 60.0], [10.0, 30.0, 14.0, 34.0]])
    boxes = torch.tensor([[0.0, 0.0, 100.0, 100.0], [0.0, 0.0, 48.0, 40.0]])
    # centres (50, 50): l = r, t = b -> 1; (12, 32): l 12 r 36, t 32 b 8
    expected = torch.tensor([1.0, math.sqrt(12 / 36 * 8 / 32)])
    torch.testing.assert_close(centerness_targets(anchors, boxes), expected)


def test_losses_are_mmdetections():
    """loss_bbox: GIoU (weight 2) of the decoded positives weighted by their centerness
    targets over the targets' sum; loss_centerness: binary cross-entropy against the targets
    over the positives."""
    atss = head()
    outputs = atss(feats())
    losses = atss.loss_by_feat(*outputs[:2], samples(GTS), outputs[2])
    inputs = atss.loss_inputs(*outputs[:2], samples(GTS))
    targets = inputs.targets
    assert targets.num_pos > 0
    goal = centerness_targets(targets.pos_prior_rows(), targets.pos_gt_boxes)
    giou = generalized_box_iou_loss(inputs.pos_boxes, targets.pos_gt_boxes, reduction="none")
    torch.testing.assert_close(losses["loss_bbox"], 2.0 * (goal * giou).sum() / goal.sum())
    centerness = torch.cat([c.permute(0, 2, 3, 1).reshape(2, -1) for c in outputs[2]], dim=1)
    pos_logits = centerness[targets.pos_image, targets.pos_prior]
    expected = nn.functional.binary_cross_entropy_with_logits(pos_logits, goal,
                                                              reduction="sum")
    torch.testing.assert_close(losses["loss_centerness"], expected / targets.num_pos)
    assert losses["loss_cls"] > 0 and float(losses["num_pos"]) == targets.num_pos


def test_no_positives_give_zero_losses_with_gradients():
    atss = head()
    outputs = atss(feats())
    losses = atss.loss_by_feat(*outputs[:2], samples([Instances(), Instances()]), outputs[2])
    for key in ("loss_bbox", "loss_centerness"):
        assert losses[key].detach().item() == 0.0 and losses[key].requires_grad


def test_scores_are_selected_by_class_then_multiplied_by_centerness():
    """Class probabilities 0.5 (classes 0 and 2) and about 1 (class 1), all above 0.05, and
    centerness 0.04: the detections keep scores 0.02 and 0.04, under the threshold their class
    probability passed, as MMDetection's ATSS does."""
    atss = head()
    with torch.no_grad():
        for layer in (atss.retina_cls, atss.retina_reg, atss.atss_centerness):
            layer.weight.zero_()
            layer.bias.zero_()
        atss.retina_cls.bias[1] = 20.0
        atss.atss_centerness.bias.fill_(math.log(0.04 / 0.96))
    atss.eval()
    results = atss.predict(feats(), samples([Instances(), Instances()]))
    for result in results:
        assert len(result) > 0
        assert set(result.labels.tolist()) == {0, 1, 2}
        class_one = result.scores[result.labels == 1]
        torch.testing.assert_close(class_one, torch.full_like(class_one, 0.04),
                                   rtol=1e-4, atol=0)
        others = result.scores[result.labels != 1]
        torch.testing.assert_close(others, torch.full_like(others, 0.02), rtol=1e-4, atol=0)


def test_box_values_are_scaled_per_level():
    atss = head()
    _, reg, _ = atss(feats())
    with torch.no_grad():
        atss.scales[2].scale.fill_(3.0)
    _, scaled, _ = atss(feats())
    torch.testing.assert_close(scaled[2], 3.0 * reg[2])
    torch.testing.assert_close(scaled[0], reg[0])


def test_group_norm_needs_channels_in_groups_of_32():
    with pytest.raises(ConfigError, match="feat_channels"):
        ATSSHead(num_classes=3, in_channels=CHANNELS, feat_channels=48)


def test_shipped_config_is_mmdetections_atss():
    cfg = load_config(str(CONFIG))
    model = get_registries().build("detector", cfg["model"], path="model")
    atss = model.head
    assert isinstance(atss, ATSSHead) and atss.num_base_priors == 1
    assert sum(isinstance(m, nn.GroupNorm) for m in atss.modules()) == 8
    assert all(conv.bias is None for conv in atss.cls_convs if isinstance(conv, nn.Conv2d))
    assert (model.neck.add_extra_convs, model.neck.relu_before_extra_convs) == ("on_output",
                                                                                False)
    assert atss.bbox_coder.target_stds == (0.1, 0.1, 0.2, 0.2)
    assert (atss.postprocess.iou_threshold, atss.postprocess.nms_pre) == (0.6, 1000)
    assert atss.loss_bbox.loss_weight == 2.0 and atss.reg_decoded_bbox
    sides = atss.priors([(1, 1)] * 5, "cpu").boxes
    assert (sides[:, 2] - sides[:, 0]).tolist() == [8.0 * s for s in STRIDES]
