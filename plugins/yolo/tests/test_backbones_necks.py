"""Output shapes, strides and sizes of the CSPDarknet backbones and PAFPN necks."""

import pytest
import torch
from plugdet_yolo.layers import BN_EPS, BN_MOMENTUM, C3, C2f
from torch import nn

from core.contracts import Backbone, Neck, missing_members
from core.errors import ConfigError
from core.plugins import get_registries

SIZES = {"n": (0.33, 0.25), "s": (0.33, 0.5)}
FAMILIES = {"v5": ("YOLOv5CSPDarknet", "YOLOv5PAFPN"), "v8": ("YOLOv8CSPDarknet", "YOLOv8PAFPN")}
#: widened channels of strides 8 / 16 / 32 for both families
CHANNELS = {"n": [64, 128, 256], "s": [128, 256, 512]}
# Published YOLOv5 v6 totals (80 classes) minus their detection head: three 1x1 convs
# to 3 * (5 + 80) = 255 channels with bias, (sum(CHANNELS) + 3) * 255 parameters.
PUBLISHED_V5_TOTAL = {"n": 1_872_157, "s": 7_235_389}


def build_pair(family, size):
    deepen, widen = SIZES[size]
    backbone_type, neck_type = FAMILIES[family]
    registries = get_registries()
    torch.manual_seed(0)
    backbone = registries.build("backbone", {"type": backbone_type, "deepen_factor": deepen,
                                             "widen_factor": widen})
    neck = registries.build("neck", {"type": neck_type, "deepen_factor": deepen,
                                     "widen_factor": widen})
    return backbone, neck


def num_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", SIZES)
def test_strides_and_channels(family, size):
    backbone, neck = build_pair(family, size)
    assert missing_members(Backbone, backbone) == [] and missing_members(Neck, neck) == []
    assert backbone.out_channels == CHANNELS[size] == neck.out_channels
    height, width = 96, 160
    feats = backbone(torch.randn(2, 3, height, width))
    outs = neck(feats)
    for maps in (feats, outs):
        assert [tuple(m.shape) for m in maps] == [
            (2, c, height // s, width // s) for c, s in zip(CHANNELS[size], (8, 16, 32),
                                                              strict=True)]


@pytest.mark.parametrize("size", SIZES)
def test_yolov5_backbone_and_neck_match_the_published_size(size):
    backbone, neck = build_pair("v5", size)
    head = (sum(CHANNELS[size]) + 3) * 255
    assert num_params(backbone) + num_params(neck) == PUBLISHED_V5_TOTAL[size] - head


def test_stems_and_blocks():
    v5, _ = build_pair("v5", "s")
    v8, _ = build_pair("v8", "s")
    assert v5.stem[0].kernel_size == (6, 6) and v5.stem[0].padding == (2, 2)
    assert v8.stem[0].kernel_size == (3, 3) and v8.stem[0].padding == (1, 1)
    assert isinstance(v5.stages[0][1], C3) and isinstance(v8.stages[0][1], C2f)
    # blocks per stage: round(3, 6, 9, 3 * 0.33) for v5, (3, 6, 6, 3) for v8
    assert [len(s[1].blocks) for s in v5.stages] == [1, 2, 3, 1]
    assert [len(s[1].blocks) for s in v8.stages] == [1, 2, 2, 1]
    norms = [m for m in (*v5.modules(), *v8.modules()) if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.eps == BN_EPS and m.momentum == BN_MOMENTUM for m in norms)


def test_c2f_concatenates_every_block_output():
    block = C2f(8, 16, num_blocks=2)
    assert block.final_conv[0].in_channels == (2 + 2) * 8
    x = torch.randn(1, 8, 5, 7)
    assert block(x).shape == (1, 16, 5, 7)


def test_out_indices_select_layers():
    backbone = get_registries().build("backbone", {
        "type": "YOLOv8CSPDarknet", "widen_factor": 0.25, "deepen_factor": 0.33,
        "out_indices": [1, 4]})
    feats = backbone(torch.randn(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [16, 2]
    assert backbone.out_channels == [32, 256]


@pytest.mark.parametrize("cfg", [
    {"type": "YOLOv8CSPDarknet", "out_indices": [4, 2]},
    {"type": "YOLOv5CSPDarknet", "out_indices": [5]},
    {"type": "YOLOv5CSPDarknet", "widen_factor": 0.0},
])
def test_bad_backbone_config(cfg):
    with pytest.raises(ConfigError):
        get_registries().build("backbone", cfg, path="model.backbone")


def test_bad_neck_config():
    with pytest.raises(ConfigError, match="in_channels"):
        get_registries().build("neck", {"type": "YOLOv8PAFPN", "in_channels": [256],
                                        "out_channels": [256]}, path="model.neck")
