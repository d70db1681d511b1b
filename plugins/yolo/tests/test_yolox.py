"""YOLOX: the backbone (Focus stem as a 6x6 conv, SPP placement), the coder formula, the IoU
loss, the head's scores and losses against a direct computation, and its predictions."""

import math

import pytest
import torch
import torch.nn.functional as F
from plugdet_yolo.layers import C3
from plugdet_yolo.yolox_backbone import YOLOXCSPDarknet
from plugdet_yolo.yolox_coder import YOLOXBoxCoder
from plugdet_yolo.yolox_head import YOLOXHead
from torchvision.ops import box_iou

from core.contracts import GTBatch, Predictions, Priors
from core.errors import ConfigError
from core.models.assigners import SimOTAAssigner
from core.models.enhance import SPP
from core.models.priors import PointGenerator
from core.structures import DetSample, Instances

STRIDES = (8, 16, 32)
NUM_CLASSES = 3
IMAGE = 64


# ---- backbone --------------------------------------------------------------------------

def test_backbone_levels_channels_and_last_stage_layout():
    backbone = YOLOXCSPDarknet(deepen_factor=0.33, widen_factor=0.375)
    outs = backbone(torch.rand(1, 3, 128, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 96, 16, 12), (1, 192, 8, 6), (1, 384, 4, 3)]
    assert backbone.out_channels == [96, 192, 384]
    last = backbone.stages[-1]
    assert [type(m) for m in last] == [type(last[0]), SPP, C3]
    assert last[1].kernel_sizes == (5, 9, 13)
    assert not last[2].blocks[0].add_identity and backbone.stages[0][1].blocks[0].add_identity
    assert [len(stage[-1].blocks) for stage in backbone.stages] == [1, 3, 3, 1]
    with pytest.raises(ConfigError, match="out_indices"):
        YOLOXCSPDarknet(out_indices=(4, 2))


def focus(x):
    """YOLOX's space-to-depth: channel groups (dy, dx) = (0, 0), (1, 0), (0, 1), (1, 1)."""
    return torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2],
                      x[..., 1::2, 1::2]], dim=1)


def test_the_6x6_stem_is_the_focus_stem_with_rearranged_weights():
    torch.manual_seed(0)
    focus_weight = torch.randn(5, 12, 3, 3)  # Focus: 3x3 conv on the 12 stacked channels
    weight = torch.zeros(5, 3, 6, 6)
    for group, (dy, dx) in enumerate([(0, 0), (1, 0), (0, 1), (1, 1)]):
        weight[:, :, dy::2, dx::2] = focus_weight[:, 3 * group:3 * group + 3]
    x = torch.rand(2, 3, 16, 20)
    expected = F.conv2d(focus(x), focus_weight, padding=1)
    torch.testing.assert_close(F.conv2d(x, weight, stride=2, padding=2), expected)
    stem = YOLOXCSPDarknet(widen_factor=0.5).stem[0]
    assert stem.weight.shape == (32, 3, 6, 6) and stem.padding == (2, 2)
    assert stem.weight.numel() == 32 * 12 * 3 * 3


# ---- coder -----------------------------------------------------------------------------

def test_coder_hand_case_from_the_cell_corner():
    coder = YOLOXBoxCoder(prior_offset=0.5)
    point, stride = torch.tensor([[12.0, 20.0]]), torch.tensor([8.0])  # cell (1, 2)
    deltas = torch.tensor([[0.5, 0.25, 0.0, math.log(2.0)]])
    box = coder.decode(point, deltas, strides=stride)  # centre (12, 18), size 8 x 16
    torch.testing.assert_close(box, torch.tensor([[8.0, 10.0, 16.0, 26.0]]))
    torch.testing.assert_close(coder.encode(point, box, strides=stride), deltas)


def test_coder_is_the_yolox_formula_on_random_values():
    gen = torch.Generator().manual_seed(3)
    levels = PointGenerator(STRIDES, offset=0.0).grid_priors([(8, 8), (4, 4), (2, 2)])
    corners = torch.cat(levels)
    strides = torch.cat([torch.full((len(p),), float(s))
                         for p, s in zip(levels, STRIDES, strict=True)])
    centres = corners + 0.5 * strides[:, None]
    deltas = torch.randn(len(corners), 4, generator=gen)
    grid = corners / strides[:, None]
    xy = (deltas[:, :2] + grid) * strides[:, None]
    wh = deltas[:, 2:].exp() * strides[:, None]
    expected = torch.cat([xy - wh / 2, xy + wh / 2], dim=1)
    decoded = YOLOXBoxCoder(prior_offset=0.5).decode(centres, deltas, strides=strides)
    torch.testing.assert_close(decoded, expected)
    torch.testing.assert_close(YOLOXBoxCoder(prior_offset=0.0).decode(corners, deltas,
                                                                      strides=strides), expected)
    l1_target = torch.cat([xy / strides[:, None] - grid, (wh / strides[:, None]).log()], dim=1)
    torch.testing.assert_close(YOLOXBoxCoder().encode(centres, expected, strides=strides),
                               l1_target, atol=1e-5, rtol=1e-5)
    clipped = YOLOXBoxCoder().decode(centres, deltas * 4, max_shape=torch.tensor([40.0, 50.0]),
                                     strides=strides)
    assert clipped.min() >= 0 and clipped[:, 0::2].max() <= 50 and clipped[:, 1::2].max() <= 40
    with pytest.raises(ConfigError, match="strides"):
        YOLOXBoxCoder().decode(centres, deltas)


# ---- head ------------------------------------------------------------------------------

def tiny_head(**kwargs):
    torch.manual_seed(0)
    return YOLOXHead(num_classes=NUM_CLASSES, in_channels=(8, 16, 16), feat_channels=8,
                     **kwargs)


def tiny_feats(seed=1):
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(2, c, IMAGE // s, IMAGE // s, generator=gen)
                 for c, s in zip((8, 16, 16), STRIDES, strict=True))


def tiny_samples():
    gts = [Instances(torch.tensor([[4.0, 6, 30, 28], [30, 20, 62, 60]]), torch.tensor([0, 2])),
           Instances(torch.tensor([[10.0, 34, 40, 58]]), torch.tensor([1]))]
    return [DetSample(ori_shape=(IMAGE, IMAGE), img_shape=(IMAGE, IMAGE),
                      pad_shape=(IMAGE, IMAGE), gt=gt) for gt in gts]


def direct_outputs(head, feats):
    """Per image, prior-major (N, ...) class logits, box values, objectness, grid cells and
    strides read cell by cell from the level maps."""
    cls_scores, bbox_preds, objectnesses = head(feats)
    rows = {"cls": [], "reg": [], "obj": [], "grid": [], "stride": []}
    for cls, reg, obj, stride in zip(cls_scores, bbox_preds, objectnesses, STRIDES,
                                     strict=True):
        height, width = cls.shape[-2:]
        for y in range(height):
            for x in range(width):
                rows["cls"].append(cls[:, :, y, x])
                rows["reg"].append(reg[:, :, y, x])
                rows["obj"].append(obj[:, 0, y, x])
                rows["grid"].append(torch.tensor([x, y], dtype=torch.float32))
                rows["stride"].append(float(stride))
    return (torch.stack(rows["cls"], 1), torch.stack(rows["reg"], 1),
            torch.stack(rows["obj"], 1), torch.stack(rows["grid"]),
            torch.tensor(rows["stride"]))


def bce(logit, target):
    p = torch.sigmoid(logit)
    return -(target * p.log() + (1 - target) * (1 - p).log())


def direct_losses(head, feats, samples):
    """YOLOX's losses written out per positive, with SimOTA on the direct scores."""
    cls, reg, obj, grid, stride = direct_outputs(head, feats)
    xy = (reg[..., :2] + grid) * stride[:, None]
    wh = reg[..., 2:].exp() * stride[:, None]
    boxes = torch.cat([xy - wh / 2, xy + wh / 2], -1)
    scores = (cls.sigmoid() * obj.sigmoid()[..., None]).sqrt()
    centres = (grid + 0.5) * stride[:, None]
    priors = Priors(centres, stride, [64, 16, 4])
    gt = GTBatch.from_samples(samples, "cpu")
    result = SimOTAAssigner().assign(priors, gt, Predictions(scores.detach(), boxes.detach()))
    loss_cls = loss_box = loss_l1 = torch.zeros(())
    num_pos = 0
    for image, sample in enumerate(samples):
        for prior in range(len(centres)):
            box_index = int(result.gt_inds[image, prior]) - 1
            if box_index < 0:
                continue
            num_pos += 1
            gt_box = sample.gt.boxes[box_index]
            iou = box_iou(boxes[image, prior][None].detach(), gt_box[None])[0, 0]
            target = torch.zeros(NUM_CLASSES)
            target[sample.gt.labels[box_index]] = iou
            loss_cls = loss_cls + bce(cls[image, prior], target).sum()
            live_iou = box_iou(boxes[image, prior][None], gt_box[None])[0, 0]
            loss_box = loss_box + 5.0 * (1 - live_iou ** 2)
            s = stride[prior]
            l1_target = torch.cat([(gt_box[:2] + gt_box[2:]) / 2 / s - grid[prior],
                                   torch.log((gt_box[2:] - gt_box[:2]) / s)])
            loss_l1 = loss_l1 + (reg[image, prior] - l1_target).abs().sum()
    fg = (result.gt_inds > 0).float()
    loss_obj = bce(obj, fg).sum()
    n = max(num_pos, 1)
    return {"loss_cls": loss_cls / n, "loss_bbox": loss_box / n, "loss_obj": loss_obj / n,
            "loss_l1": loss_l1 / n}, num_pos, scores, boxes


def test_losses_match_a_direct_computation_with_and_without_l1():
    head = tiny_head()
    feats, samples = tiny_feats(), tiny_samples()
    expected, num_pos, _, _ = direct_losses(head, feats, samples)
    assert num_pos >= 3
    losses = head.loss(feats, samples)
    assert "loss_l1" not in losses and float(losses["num_pos"]) == num_pos
    assert any(key.startswith("assign/") for key in losses)
    for key in ("loss_cls", "loss_bbox", "loss_obj"):
        torch.testing.assert_close(losses[key], expected[key], rtol=1e-5, atol=1e-6)
    head.use_l1 = True
    losses = head.loss(feats, samples)
    for key in ("loss_cls", "loss_bbox", "loss_obj", "loss_l1"):
        torch.testing.assert_close(losses[key], expected[key], rtol=1e-5, atol=1e-6)


def test_simota_gets_sqrt_of_class_times_objectness_and_decoded_boxes():
    head = tiny_head()
    feats, samples = tiny_feats(), tiny_samples()
    seen = []
    assign = head.assigner.assign
    head.assigner.assign = lambda priors, gt, pred=None: seen.append(pred) or assign(
        priors, gt, pred)
    head.loss(feats, samples)
    _, _, scores, boxes = direct_losses(head, feats, samples)
    torch.testing.assert_close(seen[0].scores, scores.detach())
    torch.testing.assert_close(seen[0].boxes, boxes.detach())


def test_get_assignments_reports_the_training_positives():
    head = tiny_head()
    torch.manual_seed(2)
    for conv in head.obj_preds:  # objectness that changes the assignment
        torch.nn.init.normal_(conv.weight, std=3.0)
    for conv in head.reg_preds:  # equal boxes of 3 strides at every cell centre
        torch.nn.init.zeros_(conv.weight)
        conv.bias.data = torch.tensor([0.5, 0.5, math.log(3.0), math.log(3.0)])
    feats, samples = tiny_feats(), tiny_samples()
    results = []
    assign = head.assigner.assign
    head.assigner.assign = lambda priors, gt, pred=None: results.append(
        assign(priors, gt, pred)) or results[-1]
    head.loss(feats, samples)
    out = head.get_assignments(feats, samples)
    trained, reported = results
    assert torch.equal(trained.gt_inds, reported.gt_inds)
    sizes = [64, 16, 4]
    for image in range(2):
        for level, gt_inds in enumerate(trained.gt_inds[image].split(sizes)):
            expected = (gt_inds > 0).nonzero().flatten()
            assert torch.equal(out.pos_inds[image][level], expected)
            assert torch.equal(out.pos_gt_inds[image][level], gt_inds[expected] - 1)


def test_an_image_without_boxes_trains_objectness_only():
    head = tiny_head(use_l1=True)
    feats = tiny_feats()
    empty = [DetSample(img_shape=(IMAGE, IMAGE), pad_shape=(IMAGE, IMAGE),
                       gt=Instances(torch.zeros((0, 4)), torch.zeros(0, dtype=torch.long)))] * 2
    losses = head.loss(feats, empty)
    assert float(losses["num_pos"]) == 0
    for key in ("loss_cls", "loss_bbox", "loss_l1"):
        assert float(losses[key].detach()) == 0
    obj = torch.cat([o.flatten(1) for o in head(feats)[2]], 1)
    torch.testing.assert_close(losses["loss_obj"], bce(obj, torch.zeros_like(obj)).sum())


def test_predictions_rank_by_class_times_objectness():
    head = tiny_head(postprocess={"type": "MultiClassNMS", "score_thr": 0.0, "nms_pre": 1000,
                                  "iou_threshold": 0.65, "max_per_img": 100})
    for conv in head.obj_preds:  # objectness that differs between priors
        torch.nn.init.normal_(conv.weight, std=0.5)
    head.eval()
    feats = tiny_feats()
    with torch.no_grad():
        results = head.predict(feats, tiny_samples())
        cls, reg, obj, grid, stride = direct_outputs(head, feats)
    scores = cls.sigmoid() * obj.sigmoid()[..., None]
    for image, result in enumerate(results):
        best = int(scores[image].max(dim=1).values.argmax())
        assert result.scores[0].item() == pytest.approx(scores[image].max().item(), rel=1e-5)
        xy = (reg[image, best, :2] + grid[best]) * stride[best]
        wh = reg[image, best, 2:].exp() * stride[best]
        expected = torch.cat([xy - wh / 2, xy + wh / 2]).clamp(0, IMAGE)
        torch.testing.assert_close(result.boxes[0], expected)


def test_bad_head_settings_are_config_errors():
    with pytest.raises(ConfigError, match="in_channels"):
        YOLOXHead(num_classes=2, in_channels=(8, 8))
    with pytest.raises(ConfigError, match="uses the predictions"):
        YOLOXHead(num_classes=2, assigner={"type": "MaxIoUAssigner", "pos_iou_thr": 0.5,
                                           "neg_iou_thr": 0.4})
