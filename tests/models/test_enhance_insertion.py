"""Enhance layers inserted by config into ResNet, TinyNet and FPN: where they go, the identity
at initialisation, DCN in place of the 3x3 convs, pretrained weights, config errors."""

import logging

import pytest
import torch
import torchvision

from core.errors import ConfigError
from core.models.backbones import ResNet, TinyNet
from core.models.enhance import ContextBlock, ModulatedDeformConv2d
from core.models.necks import FPN

ATTENTION_CFGS = {
    "SE": {"type": "SE", "ratio": 0.25},
    "CBAM": {"type": "CBAM", "ratio": 0.25},
    "NonLocal2d": {"type": "NonLocal2d"},
    "ContextBlock": {
        "type": "ContextBlock",
        "ratio": 0.25,
        "fusion_types": ["channel_add", "channel_mul"],
    },
}
DCN = {"type": "DCNv2"}
C3_C5 = [False, True, True, True]
SMALL = {"base_channels": 8, "out_indices": (0, 1, 2, 3)}
UNIT_MASK_LOGIT = 30.0  # sigmoid(30) rounds to 1 in float32


def plugin(cfg, position, stages=C3_C5):
    return {"cfg": cfg, "stages": stages, "position": position}


def outputs(model, x):
    with torch.no_grad():
        return model.eval()(x)


@pytest.mark.parametrize("name", ATTENTION_CFGS)
@pytest.mark.parametrize(
    ("depth", "position"),
    [(18, "after_conv1"), (18, "after_conv2"), (50, "after_conv1"), (50, "after_conv2"),
     (50, "after_conv3")],
)
def test_attention_in_resnet_leaves_the_output_unchanged_at_init(name, depth, position):
    torch.manual_seed(0)
    plain = ResNet(depth=depth, **SMALL)
    enhanced = ResNet(depth=depth, plugins=[plugin(ATTENTION_CFGS[name], position)], **SMALL)
    result = enhanced.load_state_dict(plain.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(".enhance." in key for key in result.missing_keys)
    x = torch.randn(2, 3, 64, 64)
    for got, expected in zip(outputs(enhanced, x), outputs(plain, x), strict=True):
        assert torch.equal(got, expected)


def test_plugins_go_into_every_block_of_the_chosen_stages_at_their_position():
    model = ResNet(
        depth=50,
        plugins=[
            plugin({"type": "SE"}, "after_conv2", [True, False, True, False]),
            plugin({"type": "ContextBlock"}, "after_conv3"),
            plugin({"type": "SE", "ratio": 0.5}, "after_conv3", [False, False, False, True]),
        ],
        **SMALL,
    )
    for stage, num_blocks in enumerate((3, 4, 6, 3)):
        layer = getattr(model, f"layer{stage + 1}")
        assert len(layer) == num_blocks
        for block in layer:
            kinds = {pos: [type(m).__name__ for m in seq] for pos, seq in block.enhance.items()}
            expected = {}
            if stage in (0, 2):
                expected["after_conv2"] = ["SELayer"]
            if stage > 0:
                expected["after_conv3"] = ["ContextBlock"] + (["SELayer"] if stage == 3 else [])
            assert kinds == expected, (stage, kinds)
    # channels: after_conv2 sees the bottleneck width, after_conv3 four times that
    assert model.layer3[0].enhance["after_conv2"][0].squeeze.in_channels == 8 * 4
    assert model.layer3[0].enhance["after_conv3"][0].channel_add[0].in_channels == 8 * 4 * 4


def test_plugin_positions_read_the_conv_bn_relu_output():
    torch.manual_seed(0)
    model = ResNet(
        depth=50,
        plugins=[plugin({"type": "SE"}, pos, [True] * 4) for pos in ("after_conv2", "after_conv3")],
        **SMALL,
    ).eval()
    block = model.layer2[1]
    seen = {}

    def keep(name):
        def hook(module, args, output):
            seen[name] = (args[0].clone(), output.clone())

        return hook

    handles = [
        block.bn2.register_forward_hook(keep("bn2")),
        block.bn3.register_forward_hook(keep("bn3")),
        block.enhance["after_conv2"].register_forward_hook(keep("after_conv2")),
        block.enhance["after_conv3"].register_forward_hook(keep("after_conv3")),
    ]
    model(torch.randn(1, 3, 64, 64))
    for handle in handles:
        handle.remove()
    assert torch.equal(seen["after_conv2"][0], torch.relu(seen["bn2"][1]))
    assert torch.equal(seen["after_conv3"][0], seen["bn3"][1])  # before the residual addition


def test_dcn_replaces_the_3x3_conv_of_the_chosen_stages():
    torch.manual_seed(0)
    model = ResNet(depth=50, dcn=DCN, stage_with_dcn=C3_C5, **SMALL)
    assert all(isinstance(b.conv2, torch.nn.Conv2d) for b in model.layer1)
    for stage in (2, 3, 4):
        for block in getattr(model, f"layer{stage}"):
            assert isinstance(block.conv2, ModulatedDeformConv2d)
    first = model.layer3[0].conv2  # the strided conv of the stage
    assert (first.stride, first.padding, first.conv_offset.stride) == (2, 1, (2, 2))


@pytest.mark.parametrize("depth", [18, 50])
def test_dcn_backbone_with_unit_masks_equals_the_plain_backbone(depth):
    torch.manual_seed(0)
    plain = ResNet(depth=depth, **SMALL)
    dcn = ResNet(depth=depth, dcn=DCN, stage_with_dcn=C3_C5, **SMALL)
    dcn.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        for module in dcn.modules():
            if isinstance(module, ModulatedDeformConv2d):
                module.conv_offset.bias[18:] = UNIT_MASK_LOGIT  # zero offsets, unit masks
    x = torch.randn(2, 3, 64, 64)
    for got, expected in zip(outputs(dcn, x), outputs(plain, x), strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_enhance_layers_in_frozen_stages_are_frozen_and_keep_their_init():
    model = ResNet(
        depth=18,
        frozen_stages=2,
        dcn=DCN,
        stage_with_dcn=[True, True, False, False],
        plugins=[plugin({"type": "ContextBlock"}, "after_conv2", [True] * 4)],
        **SMALL,
    )
    assert not any(p.requires_grad for p in model.layer2[0].enhance.parameters())
    assert not any(p.requires_grad for p in model.layer1[0].conv2.parameters())
    assert all(p.requires_grad for p in model.layer3[0].enhance.parameters())
    # the backbone's He initialisation did not overwrite the zero-initialised convs
    assert not model.layer4[1].enhance["after_conv2"][0].channel_add[-1].weight.any()
    assert not model.layer1[0].conv2.conv_offset.weight.any()


def pretrained_resnet50(tmp_path):
    reference = torchvision.models.resnet50(weights=None)
    path = tmp_path / "resnet50.pth"
    torch.save(reference.state_dict(), path)
    return reference, path


@pytest.mark.parametrize(
    ("extra", "new_key"),
    [
        ({"dcn": DCN, "stage_with_dcn": C3_C5}, "layer2.0.conv2.conv_offset.weight"),
        ({"plugins": [plugin({"type": "ContextBlock", "ratio": 1 / 16}, "after_conv3")]},
         "layer4.2.enhance.after_conv3.0.channel_add.3.weight"),
    ],
    ids=["dcn", "context_block"],
)
def test_pretrained_weights_load_and_only_new_layers_are_reported(tmp_path, caplog, extra, new_key):
    reference, path = pretrained_resnet50(tmp_path)
    with caplog.at_level(logging.INFO, logger="plugdet"):
        model = ResNet(depth=50, init_cfg={"type": "Pretrained", "checkpoint": str(path)}, **extra)
    assert "missing" not in caplog.text and "unexpected" not in caplog.text
    assert "newly initialised" in caplog.text and new_key in caplog.text
    assert "layer1.0" not in caplog.text.split("newly initialised")[1]  # stage 1 is plain
    reported = caplog.text.split("): ")[1].split("\n")[0].split(", ")
    assert set(reported) == set(model.state_dict()) - set(reference.state_dict())
    assert torch.equal(model.layer3[2].conv2.weight, reference.layer3[2].conv2.weight)
    assert torch.equal(model.layer4[0].bn3.running_var, reference.layer4[0].bn3.running_var)


def test_a_checkpoint_with_the_enhance_layers_loads_them(tmp_path, caplog):
    torch.manual_seed(0)
    cfg = {"plugins": [plugin({"type": "ContextBlock"}, "after_conv2")], **SMALL}
    trained = ResNet(depth=18, **cfg)
    torch.nn.init.normal_(trained.layer3[0].enhance["after_conv2"][0].channel_add[-1].weight)
    path = tmp_path / "enhanced.pth"
    torch.save(trained.state_dict(), path)
    with caplog.at_level(logging.INFO, logger="plugdet"):
        loaded = ResNet(depth=18, init_cfg={"type": "Pretrained", "checkpoint": str(path)}, **cfg)
    assert "newly initialised" not in caplog.text and "missing" not in caplog.text
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(outputs(loaded, x)[-1], outputs(trained, x)[-1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dcn": DCN, "stage_with_dcn": [False, True, True]},
         "stage_with_dcn: expected 4 values, got 3"),
        ({"dcn": DCN, "stage_with_dcn": [0, 1, 1, 1]}, "stage_with_dcn: expected booleans"),
        ({"stage_with_dcn": C3_C5}, "stage_with_dcn: selects stages but dcn is not set"),
        ({"dcn": DCN}, "dcn: set but stage_with_dcn selects no stage"),
        ({"dcn": {"type": "DCNv2", "stride": 2}, "stage_with_dcn": C3_C5},
         r"dcn\.stride: set by the network"),
        ({"dcn": {"type": "DCNv2", "deform_groups": 3}, "stage_with_dcn": C3_C5},
         "dcn.deform_groups: expected a positive divisor"),
        ({"plugins": [plugin({"type": "SE"}, "after_conv1", [True, True])]},
         r"plugins\[0\]\.stages: expected 4 values, got 2"),
        ({"plugins": [plugin({"type": "SE"}, "after_conv3")]},
         r"plugins\[0\]\.position: expected one of 'after_conv1', 'after_conv2', got 'after_co"),
        ({"plugins": [plugin({"type": "ContextBlok"}, "after_conv1")]},
         r"plugins\[0\]\.cfg\.type: unknown enhance 'ContextBlok'; did you mean 'ContextBlock'"),
        ({"plugins": [plugin({"type": "SE", "in_channels": 4}, "after_conv1")]},
         r"plugins\[0\]\.cfg\.in_channels: set by the network"),
        ({"plugins": [plugin({"type": "SE", "ratio": 2.0}, "after_conv1")]},
         r"plugins\[0\]\.cfg\.ratio: expected 0 < ratio <= 1, got 2.0"),
        ({"plugins": [{"cfg": {"type": "SE"}, "stage": C3_C5, "position": "after_conv1"}]},
         r"plugins\[0\]: unknown key\(s\) stage; allowed keys: cfg, position, stages"),
        ({"plugins": [{"cfg": {"type": "SE"}}]}, r"plugins\[0\]\.position: required key missing"),
    ],
)
def test_resnet_enhance_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ResNet(depth=18, **SMALL, **kwargs)


def test_config_table_errors_name_the_key():
    from core.plugins import get_registries

    table = {"type": "ResNet", "depth": 18, "stage_with_dcn": [True, "yes", True, True]}
    with pytest.raises(ConfigError, match=r"model\.backbone\.stage_with_dcn\[1\]: expected bool"):
        get_registries().build("backbone", table, "model.backbone")


def test_tiny_net_plugins_after_stages():
    torch.manual_seed(0)
    kwargs = {"widths": (8, 16, 32, 64), "depths": (1, 1, 1, 1)}
    plain = TinyNet(**kwargs)
    cfg = {"cfg": {"type": "ContextBlock", "ratio": 0.25}, "stages": [False, True, True, True],
           "position": "after_stage"}
    enhanced = TinyNet(**kwargs, plugins=[cfg])
    assert sorted(enhanced.stage_enhance) == ["1", "2", "3"]
    assert enhanced.stage_enhance["2"][0].channel_add[0].in_channels == 32
    result = enhanced.load_state_dict(plain.state_dict(), strict=False)
    assert all(key.startswith("stage_enhance.") for key in result.missing_keys)
    x = torch.randn(2, 3, 64, 64)
    for got, expected in zip(outputs(enhanced, x), outputs(plain, x), strict=True):
        assert torch.equal(got, expected)
    with torch.no_grad():  # a trained layer after stage 1 changes stages 1..3, not stage 0
        enhanced.stage_enhance["1"][0].channel_add[-1].bias.fill_(1.0)
    full = TinyNet(**kwargs, out_indices=(0, 1, 2, 3), plugins=[cfg])
    full.load_state_dict(enhanced.state_dict())
    plain_full = TinyNet(**kwargs, out_indices=(0, 1, 2, 3))
    plain_full.load_state_dict(plain.state_dict())
    got, expected = outputs(full, x), outputs(plain_full, x)
    assert torch.equal(got[0], expected[0])
    torch.testing.assert_close(got[1], expected[1] + 1.0)
    with pytest.raises(ConfigError, match=r"plugins\[0\]\.stages: expected 4 values, got 3"):
        TinyNet(**kwargs, plugins=[{**cfg, "stages": [True] * 3}])


def test_fpn_plugins_between_levels():
    torch.manual_seed(0)
    kwargs = {"in_channels": [8, 16, 32], "out_channels": 8, "num_outs": 4,
              "add_extra_convs": "on_input"}
    plain = FPN(**kwargs)
    inputs = tuple(torch.randn(1, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate((8, 16, 32)))
    # identity at init on every output level
    se = FPN(**kwargs, plugins=[{"cfg": {"type": "SE"}, "position": "on_output"}])
    assert sorted(se.output_enhance) == ["0", "1", "2", "3"] and not len(se.input_enhance)
    se.load_state_dict(plain.state_dict(), strict=False)
    for got, expected in zip(se(inputs), plain(inputs), strict=True):
        assert torch.equal(got, expected)
    # SPPF on the coarsest input: the lateral conv and the extra level read its output
    spp_cfg = {"cfg": {"type": "SPPF"}, "levels": [False, False, True], "position": "on_input"}
    spp = FPN(**kwargs, plugins=[spp_cfg])
    spp.load_state_dict(plain.state_dict(), strict=False)
    pooled = spp.input_enhance["2"](inputs[2])
    expected = plain((*inputs[:2], pooled))
    for got, want in zip(spp(inputs), expected, strict=True):
        torch.testing.assert_close(got, want)
    with pytest.raises(ConfigError, match=r"plugins\[0\]\.levels: expected 4 values, got 3"):
        FPN(**kwargs, plugins=[{**spp_cfg, "position": "on_output"}])


def test_context_block_classes_are_the_configured_ones():
    model = ResNet(depth=18, plugins=[plugin({"type": "ContextBlock"}, "after_conv2")], **SMALL)
    layers = [m for m in model.modules() if isinstance(m, ContextBlock)]
    assert len(layers) == 2 * 3  # two blocks in each of stages 2-4
