"""The shipped configs: published parameter counts and FLOPs of the COCO models, the recipe,
and the demo's model."""

from importlib import resources

import pytest

from core.engine.full_config import load_full_config
from core.plugins import get_registries
from core.tools.model_info import format_info, model_info

CONFIGS = resources.files("plugdet_detr") / "configs"
#: Parameters of the reference code's models with 80 classes, and the published GFLOPs at 640.
PUBLISHED = {"rtdetr_r18vd_6x_coco.toml": (20_184_464, 60.0),
             "rtdetr_r50vd_6x_coco.toml": (42_891_372, 136.0)}


def load(name):
    return load_full_config(str(CONFIGS / name))


def build(cfg):
    return get_registries().build("detector", cfg["model"], path="model")


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameters_match_the_reference(name):
    params = sum(p.numel() for p in build(load(name)).parameters())
    published = PUBLISHED[name][0]
    assert abs(params - published) / published < 0.02
    assert params == published  # the same layers as the reference code


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_flops_match_the_published_figures(name):
    """torch's FLOP counter (2 FLOPs per multiply-add, as core.tools.model_info) at 640 px;
    the deformable sampling itself is not counted."""
    info = model_info(load(name), (640, 640), depth=1)
    print(f"\n{name} (FLOPs = 2 x multiply-adds):\n" + format_info(info))
    params, gflops = PUBLISHED[name]
    assert info.params == params
    assert abs(info.flops / 1e9 - gflops) / gflops < 0.02


def test_coco_recipe():
    for name in PUBLISHED:
        cfg = load(name)
        optim = cfg["optim"]
        assert (optim["type"], optim["lr"], optim["weight_decay"]) == ("AdamW", 1e-4, 1e-4)
        assert optim["clip_grad"] == {"max_norm": 0.1}
        assert optim["paramwise"]["custom_keys"]["backbone"] == {"lr_mult": 0.1}
        assert cfg["train"]["max_epochs"] == 72
        assert cfg["train_dataloader"]["batch_size"] == 4
        assert "param_schedulers" not in cfg or not cfg["param_schedulers"]
        (ema,) = cfg["custom_hooks"]
        assert (ema["type"], ema["momentum"], ema["ramp_tau"]) == ("EMAHook", 1e-4, 2000.0)
        val = cfg["val_dataloader"]["dataset"]["pipeline"]
        assert {"type": "Resize", "scale": [640, 640], "keep_ratio": False} in val
        assert cfg["model"]["head"]["num_top_queries"] == 300


def test_r18_backbone_norms_get_no_weight_decay():
    from core.engine.optim import build_param_groups

    cfg = load("rtdetr_r18vd_6x_coco.toml")
    model = build(cfg)
    groups = build_param_groups(model, 1e-4, 1e-4, cfg["optim"]["paramwise"])
    options = {name: (g["lr"], g["weight_decay"]) for g in groups for name in g["param_names"]}
    backbone_norms = [n for n, m in model.backbone.named_modules()
                      if type(m).__name__ == "BatchNorm2d"]
    assert backbone_norms
    for norm in backbone_norms:
        for kind in ("weight", "bias"):
            assert options[f"backbone.{norm}.{kind}"] == pytest.approx((1e-5, 0.0))
    assert options["backbone.conv1.conv1_1.conv.weight"] == pytest.approx((1e-5, 1e-4))
    assert options["neck.lateral_convs.0.norm.weight"] == pytest.approx((1e-4, 0.0))
    assert options["head.decoder.layers.0.linear1.weight"] == pytest.approx((1e-4, 1e-4))
    assert options["head.decoder.layers.0.linear1.bias"] == pytest.approx((1e-4, 0.0))


def test_demo_model():
    cfg = load("rtdetr_r18vd_demo_shapes.toml")
    model = build(cfg)
    assert model.head.num_classes == 5  # from the shapes set
    assert model.head.decoder.num_queries <= 100 and len(model.head.decoder.layers) <= 2
    assert model.head.num_denoising > 0
