"""YOLOv5Head: sizes, bias initialisation, the losses against a direct computation, test-time
scores and the shared assignment path."""

import logging
import math
from importlib import resources

import pytest
import torch
import torch.nn.functional as F
from plugdet_yolo.yolov5_head import YOLOv5Head
from torch import nn
from torchvision.ops import complete_box_iou_loss

from core.config import load_config
from core.contracts import GTBatch
from core.errors import ConfigError
from core.plugins import get_registries
from core.structures import DetSample, Instances
from core.tools.model_info import format_info, measure

CONFIGS = resources.files("plugdet_yolo") / "configs"
#: Published sizes (80 classes) and the tolerance asked of ours.
PUBLISHED_PARAMS = {"n": 1.9e6, "s": 7.2e6}
TOLERANCE = 0.02
NUM_CLASSES = 3
IN_CHANNELS = (8, 16, 32)
IMAGE = 64


def build_head(num_classes=NUM_CLASSES, **options) -> YOLOv5Head:
    torch.manual_seed(0)
    return get_registries().build("head", {
        "type": "YOLOv5Head", "num_classes": num_classes, "in_channels": list(IN_CHANNELS),
        **options}, "model.head")


def feats(batch=2, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, c, IMAGE // s, IMAGE // s, generator=generator)
                 for c, s in zip(IN_CHANNELS, (8, 16, 32), strict=True))


def samples():
    return [
        DetSample(img_shape=(IMAGE, IMAGE), pad_shape=(IMAGE, IMAGE),
                  gt=Instances(torch.tensor([[4.0, 4, 30, 28], [30, 30, 60, 62]]),
                               torch.tensor([0, 2]))),
        DetSample(img_shape=(IMAGE, IMAGE), pad_shape=(IMAGE, IMAGE),
                  gt=Instances(torch.tensor([[10.0, 8, 40, 50]]), torch.tensor([1]))),
    ]


@pytest.mark.parametrize("size", ["n", "s"])
def test_parameter_counts_match_the_published_sizes(size):
    cfg = load_config(str(CONFIGS / f"yolov5_{size}_300e_coco.toml"))
    detector = get_registries().build("detector", cfg["model"], path="model")
    params = sum(p.numel() for p in detector.parameters())
    assert abs(params / PUBLISHED_PARAMS[size] - 1) < TOLERANCE, params
    # FLOPs (2 per multiply-add) at 320 pixels, a quarter of those at 640, to stay quick
    info = measure(detector.eval(), (320, 320), depth=1)
    print(f"yolov5_{size}\n{format_info(info)}")
    assert info.params == params and info.flops > 0


def test_bias_initialisation():
    head = build_head()
    torch.manual_seed(0)  # the convs are the head's only random parameters, in level order
    plain = [nn.Conv2d(c, 3 * (5 + NUM_CLASSES), 1) for c in IN_CHANNELS]
    for conv, reference, stride in zip(head.convs, plain, (8, 16, 32), strict=True):
        added = (conv.bias - reference.bias).view(3, 5 + NUM_CLASSES)
        torch.testing.assert_close(conv.weight, reference.weight)
        assert torch.allclose(added[:, :4], torch.zeros(3, 4))
        assert torch.allclose(added[:, 4], torch.full((3,), math.log(8 / (640 / stride) ** 2)))
        assert torch.allclose(added[:, 5:], torch.full((3, NUM_CLASSES),
                                                       math.log(0.6 / (NUM_CLASSES - 0.999999))))


def test_output_layout():
    head = build_head()
    cls_scores, bbox_preds, objectnesses = head(feats())
    raw = head.convs[1](feats()[1]).view(2, 3, 5 + NUM_CLASSES, 4, 4)
    torch.testing.assert_close(bbox_preds[1].view(2, 3, 4, 4, 4), raw[:, :, :4])
    torch.testing.assert_close(objectnesses[1].view(2, 3, 1, 4, 4), raw[:, :, 4:5])
    torch.testing.assert_close(cls_scores[1].view(2, 3, NUM_CLASSES, 4, 4), raw[:, :, 5:])


def reference_losses(head: YOLOv5Head, outputs, sample_list):
    """The losses written out per level from the assigner's result and the coder formula."""
    cls_scores, bbox_preds, objectnesses = outputs
    priors = head.priors_of(cls_scores)
    gt = GTBatch.from_samples(sample_list, "cpu")
    result = head.assigner.assign(priors, gt)
    weights = (4.0, 1.0, 0.4)
    totals = {"loss_bbox": 0.0, "loss_obj": 0.0, "loss_cls": 0.0}
    first = 0
    for level, (c, b, o) in enumerate(zip(cls_scores, bbox_preds, objectnesses, strict=True)):
        batch, _, height, width = c.shape
        stride = IMAGE // height
        anchors = torch.tensor(
            [[10, 13], [16, 30], [33, 23], [30, 61], [62, 45], [59, 119], [116, 90], [156, 198],
             [373, 326]], dtype=torch.float32)[3 * level:3 * level + 3]
        obj_target = torch.zeros(batch, height, width, 3)
        box_terms, cls_terms = [], []
        for image in range(batch):
            for y in range(height):
                for x in range(width):
                    for a in range(3):
                        prior = first + (y * width + x) * 3 + a
                        index = int(result.gt_inds[image, prior]) - 1
                        if index < 0:
                            continue
                        t = b[image, 4 * a:4 * a + 4, y, x].sigmoid()
                        cx, cy = (x + t[0] * 2 - 0.5) * stride, (y + t[1] * 2 - 0.5) * stride
                        w, h = (t[2] * 2) ** 2 * anchors[a, 0], (t[3] * 2) ** 2 * anchors[a, 1]
                        pred = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
                        loss = complete_box_iou_loss(pred[None], gt.boxes[image, index][None])
                        box_terms.append(loss)
                        obj_target[image, y, x, a] = (1 - loss.detach()).clamp(min=0)
                        target = F.one_hot(gt.labels[image, index], NUM_CLASSES).float()
                        cls_terms.append(F.binary_cross_entropy_with_logits(
                            c[image, NUM_CLASSES * a:NUM_CLASSES * (a + 1), y, x], target,
                            reduction="none"))
        logits = o.permute(0, 2, 3, 1)
        totals["loss_obj"] += weights[level] * F.binary_cross_entropy_with_logits(
            logits, obj_target)
        if box_terms:
            totals["loss_bbox"] += torch.cat(box_terms).mean()
            totals["loss_cls"] += torch.cat(cls_terms).mean()
        first += height * width * 3
    batch = len(sample_list)
    return {"loss_bbox": totals["loss_bbox"] * 0.05 * batch,
            "loss_obj": totals["loss_obj"] * 1.0 * (IMAGE / 640) ** 2 * batch,
            "loss_cls": totals["loss_cls"] * 0.5 * NUM_CLASSES / 80 * batch}


def test_losses_equal_a_direct_computation():
    head = build_head(img_scale=IMAGE)
    outputs = head(feats())
    losses = head.loss_by_feat(outputs[0], outputs[1], samples(), outputs[2])
    expected = reference_losses(head, outputs, samples())
    for key, value in expected.items():
        torch.testing.assert_close(losses[key], value, rtol=1e-5, atol=1e-7)
    assert losses["num_pos"] > 0
    total = sum(v for k, v in losses.items() if k.startswith("loss"))
    total.backward()
    assert all(conv.weight.grad.abs().sum() > 0 for conv in head.convs)


def test_one_class_has_no_class_loss_and_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="plugdet.models"):
        head = build_head(num_classes=1)
    assert "class loss is 0 by design" in caplog.text
    one_class = [DetSample(img_shape=s.img_shape, pad_shape=s.pad_shape,
                           gt=Instances(s.gt.boxes, torch.zeros_like(s.gt.labels)))
                 for s in samples()]
    losses = head.loss(feats(), one_class)
    assert losses["loss_cls"].item() == 0.0
    assert losses["loss_bbox"].item() > 0 and losses["loss_obj"].item() > 0


def test_an_image_without_boxes_trains_only_objectness():
    head = build_head()
    empty = [DetSample(img_shape=(IMAGE, IMAGE), pad_shape=(IMAGE, IMAGE))]
    losses = head.loss(feats(batch=1), empty)
    assert losses["num_pos"].item() == 0
    assert losses["loss_bbox"].item() == 0.0 and losses["loss_cls"].item() == 0.0
    assert losses["loss_obj"].item() > 0


def test_test_time_scores_are_class_times_objectness():
    head = build_head(postprocess={"type": "MultiClassNMS", "score_thr": 0.0, "nms_pre": 10000,
                                   "iou_threshold": 1.0, "max_per_img": 10000})
    head.eval()
    with torch.no_grad():
        cls_scores, _, objectnesses = head(feats(batch=1))
        expected = torch.cat([
            (c.view(3, NUM_CLASSES, -1).sigmoid() * o.view(3, 1, -1).sigmoid()).flatten()
            for c, o in zip([c[0] for c in cls_scores], [o[0] for o in objectnesses],
                            strict=True)])
        result = head.predict(feats(batch=1), samples()[:1])[0]
    top = expected.sort(descending=True).values[:len(result.scores)]
    torch.testing.assert_close(result.scores.sort(descending=True).values, top)


def test_get_assignments_reports_the_assigners_positives():
    head = build_head()
    out = head.get_assignments(feats(), samples())
    priors = head.priors_of(head(feats())[0])
    result = head.assigner.assign(priors, GTBatch.from_samples(samples(), "cpu"))
    for image in range(2):
        levels = priors.split_levels(result.gt_inds[image])
        for level, gt_inds in enumerate(levels):
            expected = (gt_inds > 0).nonzero().flatten()
            assert torch.equal(out.pos_inds[image][level], expected)
            assert torch.equal(out.pos_gt_inds[image][level], gt_inds[expected] - 1)
    assert [len(p) for p in out.priors] == [8 * 8 * 3, 4 * 4 * 3, 2 * 2 * 3]


def test_config_errors():
    with pytest.raises(ConfigError, match="in_channels"):
        build_head(in_channels=[8, 16])
    with pytest.raises(ConfigError, match="obj_level_weights"):
        build_head(obj_level_weights=[1.0])
    with pytest.raises(ConfigError, match="center_offset"):
        build_head(prior_generator={"type": "AnchorGenerator", "strides": [8, 16, 32],
                                    "base_sizes": [[[10, 13]]] * 3, "center_offset": 0.5})
