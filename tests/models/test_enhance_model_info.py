"""model_info: parameters and FLOPs per module from torch's FLOP counter, checked against
hand-computed convolution and ContextBlock costs."""

from importlib import resources

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from core.config import load_config
from core.models.enhance import ModulatedDeformConv2d
from core.tools.model_info import custom_flop_formulas, main, model_info

CONFIGS = resources.files("plugdet_retinanet") / "configs"
PLAIN_DEMO = "retinanet_tinynet_fpn_demo_shapes.toml"
GCB_DEMO = "retinanet_tinynet_gcb_fpn_demo_shapes.toml"
DEMO_SIZE = (160, 160)
# the demo's TinyNet stages 1-3: channels and strides; ContextBlock ratio 0.25
GCB_STAGES = ((32, 8), (64, 16), (128, 32))
GCB_RATIO = 0.25


def test_a_deformable_conv_costs_the_conv_it_deforms():
    x = torch.randn(1, 6, 12, 10)
    dcn = ModulatedDeformConv2d(6, 8, stride=2)
    with FlopCounterMode(display=False, custom_mapping=custom_flop_formulas()) as counter:
        dcn(x)
    out_h, out_w = 6, 5
    deform = 2 * 8 * out_h * out_w * 6 * 9
    offset_conv = 2 * (3 * 9) * out_h * out_w * 6 * 9
    assert counter.get_total_flops() == deform + offset_conv


def context_block_cost(channels: int, stride: int) -> tuple[int, int]:
    """Hand count: attention mask conv and weighted sum over N positions, two 1x1 transforms."""
    positions = (DEMO_SIZE[0] // stride) * (DEMO_SIZE[1] // stride)
    planes = int(channels * GCB_RATIO)
    flops = 2 * positions * channels + 2 * positions * channels + 2 * 2 * channels * planes
    params = (channels + 1) + (channels * planes + planes) + 2 * planes + (planes * channels
                                                                          + channels)
    return params, flops


def test_context_block_demo_costs_what_the_blocks_add():
    plain = model_info(load_config(str(CONFIGS / PLAIN_DEMO)), DEMO_SIZE, depth=2)
    gcb = model_info(load_config(str(CONFIGS / GCB_DEMO)), DEMO_SIZE, depth=2)
    expected = [context_block_cost(c, s) for c, s in GCB_STAGES]
    params, flops = sum(p for p, _ in expected), sum(f for _, f in expected)
    assert gcb.enhance == [("ContextBlock", 3, params, flops)] and not plain.enhance
    assert gcb.params - plain.params == params
    assert gcb.flops - plain.flops == flops
    rows = {row.name: row for row in gcb.rows}
    assert rows["backbone.stage_enhance"].flops == flops  # a ModuleDict: its children's sum
    assert rows["backbone"].flops == sum(
        rows[f"backbone.{part}"].flops for part in ("stem", "stages", "stage_enhance")
    )
    assert rows["backbone"].flops + rows["neck"].flops + rows["head"].flops == gcb.flops
    # the head's first conv: 3x3, 48 -> 48 channels on levels of stride 8, 16, 32
    head_positions = sum((160 // s) ** 2 for s in (8, 16, 32))
    assert rows["head.cls_convs"].flops == 2 * 2 * head_positions * 48 * 48 * 9
    assert gcb.params == sum(p.numel() for p in _demo_model().parameters())


def _demo_model() -> nn.Module:
    from core.plugins import get_registries

    cfg = load_config(str(CONFIGS / GCB_DEMO))
    return get_registries().build("detector", cfg["model"], path="model")


def test_cli_prints_the_table_and_input_size(tmp_path, capsys):
    config = tmp_path / "r18.toml"
    config.write_text(
        '_base_ = ["plugdet_retinanet::configs/retinanet_r50_fpn_dconv_c3-c5_1x_coco.toml"]\n'
        "[model.backbone]\ndepth = 18\nbase_channels = 8\n"
        "init_cfg = {type = \"Pretrained\", checkpoint = \"/nonexistent.pth\"}\n"
        "[model.neck]\nin_channels = [8, 16, 32, 64]\nout_channels = 16\n"
        "[model.head]\nin_channels = 16\nfeat_channels = 16\nstacked_convs = 1\n"
    )
    assert main([str(config), "--shape", "64", "96", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "input: (1, 3, 64, 96)" in out and "at input (1, 3, 64, 96)" in out
    assert "  DCNv2 x6 " in out  # stages 2-4, 2 blocks each
    assert "backbone.layer1" not in out  # depth 1: backbone, neck, head only
    assert main([str(config), "--set", "model.backbone.stage_with_dcn=[true]"]) == 2
    assert "stage_with_dcn: expected 4 values, got 1" in capsys.readouterr().err
