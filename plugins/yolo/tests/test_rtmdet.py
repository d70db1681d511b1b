"""RTMDet: CSPNeXt blocks and backbone, the neck, the head with shared convs and per-level
BatchNorms, the loss against a direct computation, published sizes and the COCO recipe."""

import copy
import math
from importlib import resources

import pytest
import torch
from plugdet_yolo.cspnext import ChannelAttention, CSPNeXt, CSPNeXtLayer
from plugdet_yolo.cspnext_pafpn import CSPNeXtPAFPN
from torch import nn
from torchvision.ops import box_iou, generalized_box_iou_loss

from core.config import load_config
from core.contracts import GTBatch, Predictions
from core.engine.class_count import resolve_num_classes
from core.engine.full_config import load_full_config
from core.errors import ConfigError
from core.plugins import get_registries
from core.structures import DetBatch, DetSample, Instances
from core.tools.model_info import format_info, model_info

#: Published parameter counts with 80 classes (MMDetection / MMYOLO tables: tiny is listed
#: as 4.8 M, MMDetection's model summary gives 4.88 M).
PUBLISHED = {"tiny": 4.88e6, "s": 8.89e6, "m": 24.71e6, "l": 52.3e6}
PUBLISHED_GMACS = 8.1
SCALES = {"tiny": (0.167, 0.375), "s": (0.33, 0.5), "m": (0.67, 0.75), "l": (1.0, 1.0)}
NUM_CLASSES = 3
TINY = {"deepen_factor": 0.167, "widen_factor": 0.125}


def config_path(name):
    return str(resources.files("plugdet_yolo") / "configs" / name)


def build(stage, cfg):
    torch.manual_seed(0)
    return get_registries().build(stage, cfg, path="model")


def model_cfg(deepen, widen, num_classes=80, **head):
    return {
        "type": "YOLODetector",
        "backbone": {"type": "CSPNeXt", "deepen_factor": deepen, "widen_factor": widen},
        "neck": {"type": "CSPNeXtPAFPN", "deepen_factor": deepen, "widen_factor": widen},
        "head": {"type": "RTMDetHead", "num_classes": num_classes, "widen_factor": widen,
                 **head},
    }


def tiny_model(**head):
    return build("detector", model_cfg(*TINY.values(), **{"num_classes": NUM_CLASSES, **head}))


def samples(size=96):
    gts = [Instances(torch.tensor([[8.0, 10, 50, 60], [40, 30, 90, 88]]), torch.tensor([0, 2])),
           Instances(torch.zeros((0, 4)), torch.zeros(0, dtype=torch.long)),
           Instances(torch.tensor([[20.0, 16, 70, 50]]), torch.tensor([1]))]
    return [DetSample(ori_shape=(size, size), img_shape=(size, size), pad_shape=(size, size),
                      gt=gt) for gt in gts]


def params(module):
    return sum(p.numel() for p in module.parameters())


# ---- sizes -------------------------------------------------------------------------------

def test_tiny_config_has_the_published_size():
    cfg = load_config(config_path("rtmdet_tiny_300e_coco.toml"))
    count = params(build("detector", cfg["model"]))
    assert abs(count - PUBLISHED["tiny"]) / PUBLISHED["tiny"] < 0.02
    assert count == params(build("detector", model_cfg(*SCALES["tiny"])))


@pytest.mark.parametrize("size", ["s", "m", "l"])
def test_other_scales_have_the_published_sizes(size):
    count = params(build("detector", model_cfg(*SCALES[size])))
    assert abs(count - PUBLISHED[size]) / PUBLISHED[size] < 0.002


def test_flops_match_the_published_figure():
    """The references print 8.1 G multiply-adds at 640 px; core.tools.model_info counts
    2 FLOPs per multiply-add."""
    cfg = load_config(config_path("rtmdet_tiny_300e_coco.toml"))
    info = model_info(cfg, (640, 640), depth=1)
    print("\nrtmdet_tiny at 640x640 (FLOPs = 2 x multiply-adds):\n" + format_info(info))
    assert info.params == params(build("detector", cfg["model"]))
    assert abs(info.flops / 2 / 1e9 - PUBLISHED_GMACS) / PUBLISHED_GMACS < 0.02


# ---- blocks, backbone, neck --------------------------------------------------------------

def test_channel_attention_against_the_formula():
    torch.manual_seed(0)
    layer = ChannelAttention(6)
    x = torch.randn(2, 6, 5, 7)
    weight, bias = layer.fc.weight[:, :, 0, 0].detach(), layer.fc.bias.detach()
    gate = torch.empty(2, 6)
    for b in range(2):
        for c in range(6):
            z = sum(float(weight[c, k]) * float(x[b, k].mean()) for k in range(6)) + float(bias[c])
            gate[b, c] = min(max(z + 3.0, 0.0), 6.0) / 6.0  # hard sigmoid
    assert torch.allclose(layer(x), x * gate[:, :, None, None], atol=1e-6)


def test_cspnext_layer_structure():
    layer = CSPNeXtLayer(16, 32, num_blocks=2, add_identity=True, channel_attention=True)
    assert isinstance(layer.attention, ChannelAttention) and layer.attention.fc.in_channels == 32
    depthwise = [m for m in layer.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 2
    assert all(m.kernel_size == (5, 5) and m.groups == m.in_channels == 16 for m in depthwise)
    assert all(block.add_identity for block in layer.blocks)
    assert layer(torch.randn(1, 16, 8, 8)).shape == (1, 32, 8, 8)
    plain = CSPNeXtLayer(16, 32, channel_attention=False)
    assert isinstance(plain.attention, nn.Identity)


def test_tiny_backbone_and_neck_shapes():
    backbone = CSPNeXt(0.167, 0.375)
    assert [m[0].out_channels for m in backbone.stem] == [12, 12, 24]
    assert [m[0].stride for m in backbone.stem] == [(2, 2), (1, 1), (1, 1)]
    # one block per stage; SPPF before the CSP layer of the last stage only
    assert [len(stage[-1].blocks) for stage in backbone.stages] == [1, 1, 1, 1]
    assert [type(stage[1]).__name__ for stage in backbone.stages] == [
        "CSPNeXtLayer", "CSPNeXtLayer", "CSPNeXtLayer", "SPPF"]
    assert [stage[-1].blocks[0].add_identity for stage in backbone.stages] == [
        True, True, True, False]
    assert all(isinstance(stage[-1].attention, ChannelAttention) for stage in backbone.stages)
    feats = backbone(torch.randn(1, 3, 128, 96))
    assert [f.shape for f in feats] == [(1, 96, 16, 12), (1, 192, 8, 6), (1, 384, 4, 3)]
    neck = CSPNeXtPAFPN(deepen_factor=0.167, widen_factor=0.375)
    outs = neck(feats)
    assert neck.out_channels == [96, 96, 96]
    assert [o.shape for o in outs] == [(1, 96, 16, 12), (1, 96, 8, 6), (1, 96, 4, 3)]
    layers = [m for m in neck.modules() if isinstance(m, CSPNeXtLayer)]
    assert len(layers) == 4 and not any(isinstance(m, ChannelAttention) for m in neck.modules())
    assert not any(b.add_identity for layer in layers for b in layer.blocks)


@pytest.mark.parametrize("kwargs", [{"deepen_factor": 0.0}, {"out_indices": (3, 2)}])
def test_bad_backbone_config(kwargs):
    with pytest.raises(ConfigError):
        CSPNeXt(**kwargs)


# ---- head --------------------------------------------------------------------------------

def test_convs_are_shared_across_levels_and_batchnorms_are_not():
    head = tiny_model().head
    assert len(head.cls_convs) == len(head.reg_convs) == 1
    assert len(head.cls_norms) == len(head.reg_norms) == 3
    norms = {id(n) for level in head.cls_norms for n in level}
    assert len(norms) == 3 * 2
    unshared = tiny_model(share_conv=False).head
    assert len(unshared.cls_convs) == 3
    conv_params = sum(params(c) for c in (head.cls_convs[0], head.reg_convs[0]))
    assert params(unshared) == params(head) + 2 * conv_params
    head.eval()
    # with equal per-level BatchNorms and predictors, equal inputs give equal outputs ...
    for norms, preds in ((head.cls_norms, head.cls_preds), (head.reg_norms, head.reg_preds)):
        for level in (1, 2):
            norms[level].load_state_dict(norms[0].state_dict())
            preds[level].load_state_dict(preds[0].state_dict())
    x = torch.randn(1, 32, 4, 4)
    cls, reg = head((x, x, x))
    assert torch.equal(cls[0], cls[1]) and torch.equal(reg[0], reg[2])
    # ... a level's BatchNorm changes only that level, the shared conv changes all
    with torch.no_grad():
        head.cls_norms[1][0].bias += 1.0
    cls2, _ = head((x, x, x))
    assert torch.equal(cls2[0], cls[0]) and torch.equal(cls2[2], cls[2])
    assert not torch.allclose(cls2[1], cls[1])
    with torch.no_grad():
        head.cls_convs[0][1].weight.mul_(2.0)
    cls3, _ = head((x, x, x))
    assert all(not torch.allclose(a, b) for a, b in zip(cls3, cls2, strict=True))


def test_shared_conv_gets_gradients_from_every_level():
    head = tiny_model().head
    x = torch.randn(1, 32, 4, 4)
    grads = []
    for level in range(3):
        head.zero_grad()
        feats = [torch.zeros_like(x)] * 3
        feats[level] = x
        cls, _ = head(tuple(feats))
        cls[level].sum().backward()
        grads.append(head.cls_convs[0][0].weight.grad.clone())
    assert all(g.abs().sum() > 0 for g in grads)


def test_initialisation_and_point_priors_at_offset_zero():
    head = tiny_model().head
    for pred in head.cls_preds:
        assert torch.allclose(pred.bias, torch.full_like(pred.bias, math.log(0.01 / 0.99)))
    for pred in head.reg_preds:
        assert torch.equal(pred.bias, torch.zeros_like(pred.bias))
        assert float(pred.weight.detach().std()) == pytest.approx(0.01, rel=0.2)
    priors = head.priors([(2, 3), (1, 2), (1, 1)], "cpu")
    assert priors.points[:3].tolist() == [[0.0, 0.0], [8.0, 0.0], [16.0, 0.0]]
    assert priors.points[6].tolist() == [0.0, 0.0] and float(priors.strides[6]) == 16


def test_predicted_distances_are_scaled_by_the_stride_without_exp():
    head = tiny_model().head
    head.postprocess.score_thr = 0.5
    # one map per level: level 1 (stride 16) at 2 x 2, the other levels all background
    cls = [torch.full((1, NUM_CLASSES, s, s), -10.0) for s in (4, 2, 1)]
    reg = [torch.zeros(1, 4, s, s) for s in (4, 2, 1)]
    cls[1][0, 2, 1, 1] = 5.0  # point (16, 16)
    reg[1][0, :, 1, 1] = torch.tensor([0.5, 0.25, 1.0, 1.5])
    sample = DetSample(img_shape=(64, 64), pad_shape=(64, 64))
    (pred,) = head.predict_by_feat(cls, reg, [sample])
    assert pred.labels.tolist() == [2]
    assert pred.boxes[0].tolist() == [16 - 8.0, 16 - 4.0, 16 + 16.0, 16 + 24.0]


def direct_loss(head, cls_scores, bbox_preds, batch_samples):
    """The RTMDet losses written out per positive box and per logit."""
    priors = head.priors_of(cls_scores)
    cls = torch.cat([c.flatten(2).transpose(1, 2) for c in cls_scores], dim=1)
    dist = torch.cat([d.flatten(2).transpose(1, 2) for d in bbox_preds], dim=1)
    points, strides = priors.points, priors.strides
    boxes = torch.cat([points - dist[..., :2] * strides[:, None],
                       points + dist[..., 2:] * strides[:, None]], dim=-1)
    gt = GTBatch.from_samples(batch_samples, "cpu")
    result = head.assigner.assign(priors, gt, Predictions(cls.sigmoid().detach(),
                                                          boxes.detach()))
    image, prior = result.pos_mask.nonzero(as_tuple=True)
    matched = gt.boxes[image, result.gt_inds[image, prior] - 1]
    ious = torch.stack([box_iou(boxes[i, p][None], m[None])[0, 0]
                        for i, p, m in zip(image, prior, matched, strict=True)]).detach()
    # the soft labels are the IoUs of the predicted boxes with their boxes
    assert torch.allclose(result.quality[image, prior], ious, atol=1e-5)
    total = ious.sum().clamp(min=1)
    soft = torch.zeros_like(cls)
    soft[image, prior, result.labels[image, prior]] = ious
    prob = cls.sigmoid()
    qfl = -(soft * torch.log(prob) + (1 - soft) * torch.log(1 - prob)) * (soft - prob).abs() ** 2
    giou = sum(float(ious[k]) * float(generalized_box_iou_loss(boxes[i, p], m))
               for k, (i, p, m) in enumerate(zip(image, prior, matched, strict=True)))
    return qfl.sum() / total, 2.0 * giou / float(total), len(image)


def test_loss_equals_a_direct_computation():
    head = tiny_model().head
    generator = torch.Generator().manual_seed(3)
    sizes = ((12, 12), (6, 6), (3, 3))
    cls_scores = [torch.randn(3, NUM_CLASSES, h, w, generator=generator) for h, w in sizes]
    bbox_preds = [torch.rand(3, 4, h, w, generator=generator) * 3 + 0.2 for h, w in sizes]
    losses = head.loss_by_feat(cls_scores, bbox_preds, samples())
    loss_cls, loss_bbox, num_pos = direct_loss(head, cls_scores, bbox_preds, samples())
    assert num_pos > 3 and float(losses["num_pos"]) == num_pos
    assert float(losses["loss_cls"]) == pytest.approx(float(loss_cls), rel=1e-5)
    assert float(losses["loss_bbox"]) == pytest.approx(loss_bbox, rel=1e-5)


def test_loss_on_a_hand_computed_case():
    """One box, one image, all logits 0 (p = 1/2): the box [0, 0, 16, 16] at stride 8 has the
    candidate (8, 8) only (strictly inside); predicted distances 1 (x stride 8) give the box
    [0, 0, 16, 16] around it (IoU 1), so k = 1 and the soft target is 1; GIoU loss 0."""
    head = tiny_model().head
    sizes = ((4, 4), (2, 2), (1, 1))
    cls_scores = [torch.zeros(1, NUM_CLASSES, h, w) for h, w in sizes]
    bbox_preds = [torch.ones(1, 4, h, w) for h, w in sizes]
    sample = DetSample(img_shape=(32, 32), pad_shape=(32, 32),
                       gt=Instances(torch.tensor([[0.0, 0, 16, 16]]), torch.tensor([1])))
    losses = head.loss_by_feat(cls_scores, bbox_preds, [sample])
    logits = (16 + 4 + 1) * NUM_CLASSES
    # negatives: BCE(0, 0) = log 2 times (1/2) ** 2; the positive: BCE(0, 1) = log 2 times
    # |1 - 1/2| ** 2; divided by the soft-target sum 1
    expected = (logits - 1) * 0.25 * math.log(2) + 0.25 * math.log(2)
    assert float(losses["num_pos"]) == 1
    assert float(losses["loss_cls"]) == pytest.approx(expected, rel=1e-5)
    assert float(losses["loss_bbox"]) == pytest.approx(0.0, abs=1e-6)


def test_training_iterations_and_prediction_on_random_data():
    model = tiny_model()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = DetBatch(torch.rand(3, 3, 96, 96, generator=torch.Generator().manual_seed(1)),
                     samples())
    for _ in range(2):
        losses = model.loss(batch)
        assert float(losses["num_pos"]) > 0
        total = sum(v for k, v in losses.items() if k.startswith("loss"))
        optimizer.zero_grad()
        total.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters()
                   if p.grad is not None)
        optimizer.step()
    model.eval()
    for pred in model.predict(batch):
        assert pred.boxes.shape == (len(pred), 4)
        assert ((pred.labels >= 0) & (pred.labels < NUM_CLASSES)).all()


def test_loss_is_deterministic():
    def run():
        model = tiny_model()
        batch = DetBatch(torch.rand(3, 3, 96, 96, generator=torch.Generator().manual_seed(1)),
                         samples())
        return {k: float(v.detach()) for k, v in model.loss(batch).items()}
    assert run() == run()


@pytest.mark.parametrize(("head", "match"), [
    ({"stacked_convs": 0}, "stacked_convs"),
    ({"num_classes": 0}, "num_classes"),
    ({"prior_generator": {"type": "AnchorGenerator", "strides": [8, 16, 32],
                          "ratios": [0.5, 1.0], "octave_base_scale": 4,
                          "scales_per_octave": 1}}, "one point"),
])
def test_bad_head_config(head, match):
    with pytest.raises(ConfigError, match=match):
        tiny_model(**head)


# ---- configs -----------------------------------------------------------------------------

def test_coco_config_is_the_published_recipe():
    cfg = load_full_config(str(config_path("rtmdet_tiny_300e_coco.toml")))
    optim = cfg["optim"]
    assert (optim["type"], optim["lr"], optim["weight_decay"]) == ("AdamW", 0.004, 0.05)
    assert optim["paramwise"] == {"norm_decay_mult": 0.0, "bias_decay_mult": 0.0}
    assert cfg["train"]["max_epochs"] == 300
    warmup, cosine = cfg["param_schedulers"]
    assert (warmup["type"], warmup["by_epoch"], warmup["end"]) == ("LinearWarmup", False, 1000)
    assert (cosine["type"], cosine["begin"], cosine["end"]) == ("Cosine", 150, 300)
    assert cosine["eta_min"] == pytest.approx(0.004 * 0.05)
    ema, switch = cfg["custom_hooks"]
    assert (ema["type"], ema["momentum"], ema["ramp_tau"]) == ("EMAHook", 0.0002, 2000)
    assert switch["type"] == "PipelineSwitchHook" and switch["close_mosaic_epochs"] == 20
    pipeline = [t["type"] for t in cfg["train_dataloader"]["dataset"]["pipeline"]]
    assert pipeline[:2] == ["LoadImage", "Mosaic"] and "MixUp" in pipeline
    assert not {"Mosaic", "MixUp"} & {t["type"] for t in switch["switch_pipeline"]}
    head = cfg["model"]["head"]
    assert {k: head["loss_cls"][k] for k in ("type", "beta", "loss_weight")} == {
        "type": "QualityFocalLoss", "beta": 2.0, "loss_weight": 1.0}
    assert head["loss_bbox"]["loss_weight"] == 2.0 and head["prior_generator"]["offset"] == 0


def test_coco_pipelines_give_640_px_samples(tmp_path, monkeypatch):
    """The recipe's training, last-epochs and test pipelines on generated 160 px images."""
    monkeypatch.setenv("PLUGDET_CACHE", str(tmp_path))
    cfg = load_config(config_path("rtmdet_tiny_300e_coco.toml"))
    pipelines = (cfg["train_dataloader"]["dataset"]["pipeline"],
                 cfg["custom_hooks"][1]["switch_pipeline"],
                 cfg["val_dataloader"]["dataset"]["pipeline"])
    for pipeline in pipelines:
        dataset = get_registries().build("dataset", {
            "type": "ShapesDataset", "num_images": 4, "image_size": 160,
            "pipeline": copy.deepcopy(pipeline)}, path="dataset")
        sample = dataset[0]
        assert sample.image.shape == (3, 640, 640) and sample.image.dtype == torch.float32
        assert len(sample.gt) > 0


def test_demo_config_builds():
    cfg = resolve_num_classes(load_config(config_path("rtmdet_tiny_demo_shapes.toml")))
    model = build("detector", cfg["model"])
    assert model.head.num_classes == 5 and model.backbone.widen_factor == 0.375
    assert type(model.head.assigner).__name__ == "DynamicSoftLabelAssigner"
