"""The shipped Mask R-CNN configs build and say what they claim."""

from importlib import resources

import pytest
from torch import nn

from core.config import load_config
from core.engine.class_count import resolve_num_classes
from core.plugins import get_registries

CONFIGS = resources.files("plugdet_faster_rcnn") / "configs"
#: torchvision's published parameter count of ``maskrcnn_resnet50_fpn`` (91 classes with the
#: background, frozen BatchNorm: convolution and linear weights only).
TV_PARAMETERS = 44_401_393
TV_CLASSES = 91
FC_CHANNELS = 1024
MASK_CHANNELS = 256
BOX_SIZE = 4
#: Parameters of one class in torchvision's predictors: a class row and 4 box rows of the FC
#: (1024 weights and a bias each), a mask channel of the 1x1 conv (256 weights and a bias).
PER_CLASS = (1 + BOX_SIZE) * (FC_CHANNELS + 1) + (MASK_CHANNELS + 1)
#: The 80-class model: torchvision's with 81 classes less the background's box rows and mask
#: channel (ours keeps only its class row): 44,343,216.
EXPECTED_80 = (TV_PARAMETERS - (TV_CLASSES - 81) * PER_CLASS
               - BOX_SIZE * (FC_CHANNELS + 1) - (MASK_CHANNELS + 1))
PUBLISHED_TOLERANCE = 0.02


def load(name):
    cfg = resolve_num_classes(load_config(str(CONFIGS / name)))  # the count from the dataset
    cfg["model"]["backbone"].pop("init_cfg", None)  # no weights download in tests
    return cfg


def build(cfg):
    return get_registries().build("detector", cfg["model"], path="model")


@pytest.mark.parametrize("name, num_classes, aligned, sampling_ratio", [
    ("mask_rcnn_r50_fpn_1x_coco.toml", 80, True, 0),
    ("pretrained/mask_rcnn_r50_fpn_torchvision_coco.toml", 80, False, 2),
    ("mask_rcnn_tinynet_fpn_demo_shapes.toml", 5, True, 0),
])
def test_shipped_configs_build_a_mask_branch_on_masked_data(name, num_classes, aligned,
                                                            sampling_ratio):
    cfg = load(name)
    model = build(cfg)
    head = model.roi_head
    assert type(model).__name__ == "MaskRCNN" and head.num_classes == num_classes
    extractor = head.mask_roi_extractor
    assert (extractor.out_size, head.mask_size) == (14, 28)
    assert (extractor.aligned, extractor.sampling_ratio) == (aligned, sampling_ratio)
    assert head.mask_head.conv_logits.out_channels == num_classes
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        assert cfg[loader]["dataset"]["with_mask"] is True
    for evaluator in ("val_evaluator", "test_evaluator"):
        assert "segm" in cfg[evaluator]["metric"]


def test_coco_parameters_are_torchvisions_less_the_extra_classes():
    model = build(load("mask_rcnn_r50_fpn_1x_coco.toml"))
    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear
                                                        | nn.ConvTranspose2d)]
    weights = sum(p.numel() for m in layers for p in m.parameters(recurse=False))
    assert EXPECTED_80 == 44_343_216
    assert weights == EXPECTED_80
    assert abs(weights - TV_PARAMETERS) / TV_PARAMETERS < PUBLISHED_TOLERANCE
    head = model.roi_head.mask_head
    assert len(head.convs) == 4 and head.upsample.out_channels == MASK_CHANNELS
