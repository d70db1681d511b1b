"""The shipped configs build and say what they claim."""

from importlib import resources

import pytest
from torch import nn

from core.config import load_config
from core.engine.class_count import resolve_num_classes
from core.plugins import get_registries

CONFIGS = resources.files("plugdet_faster_rcnn") / "configs"
#: torchvision's published parameter count of Faster R-CNN R50-FPN (91 classes, frozen
#: BatchNorm: convolution and linear weights only).
TV_PARAMETERS = 41_755_286
TV_CLASSES = 91
FC_CHANNELS = 1024


def load(name):
    cfg = resolve_num_classes(load_config(str(CONFIGS / name)))  # the count from the dataset
    cfg["model"]["backbone"].pop("init_cfg", None)  # no weights download in tests
    return cfg


@pytest.mark.parametrize("name, num_classes", [
    ("faster_rcnn_r50_fpn_1x_coco.toml", 80),
    ("faster_rcnn_r18_fpn_1x_raccoon.toml", 1),
    ("faster_rcnn_tinynet_fpn_demo_shapes.toml", 5),
])
def test_shipped_configs_build(name, num_classes):
    model = get_registries().build("detector", load(name)["model"], path="model")
    assert model.roi_head.num_classes == num_classes
    assert type(model.rpn_head.sampler).__name__ == "RandomSampler"
    assert model.roi_head.sampler.add_gt_as_proposals


def test_coco_config_is_the_published_recipe():
    cfg = load("faster_rcnn_r50_fpn_1x_coco.toml")
    assert (cfg["optim"]["type"], cfg["optim"]["lr"]) == ("SGD", 0.02)
    assert cfg["train"]["max_epochs"] == 12
    model = get_registries().build("detector", cfg["model"], path="model")
    rpn, roi = model.rpn_head, model.roi_head
    anchors = rpn.priors([(2, 2)] * 5, "cpu").boxes
    sides = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    assert sorted({round(float(s) ** 0.5) for s in sides}) == [32, 64, 128, 256, 512]
    assert (rpn.sampler.num, rpn.sampler.pos_fraction) == (256, 0.5)
    assert (rpn.train_postprocess.nms_pre, rpn.train_postprocess.max_per_img) == (2000, 1000)
    assert (rpn.postprocess.nms_pre, rpn.postprocess.max_per_img) == (1000, 1000)
    assert (roi.sampler.num, roi.sampler.pos_fraction) == (512, 0.25)
    assert roi.bbox_coder.target_stds == (0.1, 0.1, 0.2, 0.2)
    assert (roi.roi_extractor.out_size, roi.roi_extractor.aligned) == (7, True)
    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    weights = sum(p.numel() for m in layers for p in m.parameters(recurse=False))
    # torchvision predicts a background box too: 91 + 91 * 4 outputs against our 81 + 80 * 4
    tv_predictors = (FC_CHANNELS + 1) * (TV_CLASSES + TV_CLASSES * 4)
    ours_predictors = (FC_CHANNELS + 1) * (81 + 80 * 4)
    assert weights - ours_predictors == TV_PARAMETERS - tv_predictors
