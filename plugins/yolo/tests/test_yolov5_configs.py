"""The shipped YOLOv5 configs build and say what they claim."""

from importlib import resources

import pytest
from plugdet_yolo.yolov5_head import YOLOV5_ANCHORS

from core.engine.full_config import load_full_config
from core.plugins import get_registries

CONFIGS = resources.files("plugdet_yolo") / "configs"


def load(name):
    return load_full_config(str(CONFIGS / name))


@pytest.mark.parametrize(("name", "num_classes", "widen"), [
    ("yolov5_n_300e_coco.toml", 80, 0.25),
    ("yolov5_s_300e_coco.toml", 80, 0.5),
    ("yolov5_n_demo_shapes.toml", 5, 0.25),
    ("yolov5_n_scratch_raccoon.toml", 1, 0.25),
])
def test_shipped_configs_build(name, num_classes, widen):
    model = get_registries().build("detector", load(name)["model"], path="model")
    assert type(model).__name__ == "YOLODetector"
    assert model.head.num_classes == num_classes
    assert model.backbone.widen_factor == widen
    assert model.head.in_channels == model.neck.out_channels == [
        int(c * widen) for c in (256, 512, 1024)]
    assert type(model.head.assigner).__name__ == "YOLOv5ShapeMatchAssigner"
    assert model.head.assigner.anchor_t == 4.0
    generator = model.head.prior_generator
    assert generator.center_offset == 0.0 and generator.strides == [8, 16, 32]
    sizes = [(a[:, 2:] - a[:, :2]).tolist() for a in generator.base_anchors]
    assert sizes == YOLOV5_ANCHORS


def test_coco_configs_are_the_published_recipe():
    for name in ("yolov5_n_300e_coco.toml", "yolov5_s_300e_coco.toml"):
        cfg = load(name)
        optim = cfg["optim"]
        assert (optim["type"], optim["lr"], optim["momentum"], optim["weight_decay"]) == (
            "SGD", 0.01, 0.937, 0.0005)
        assert optim["paramwise"] == {"norm_decay_mult": 0.0, "bias_decay_mult": 0.0}
        assert cfg["train"]["max_epochs"] == 300
        assert [h["type"] for h in cfg["custom_hooks"]] == ["EMAHook"]
        assert cfg["val_dataloader"]["dataset"]["pipeline"][1]["scale"] == [640, 640]
        assert cfg["model"]["head"]["img_scale"] == 640
        assert cfg["model"]["head"]["loss_scale_by_batch"]
    n, s = load("yolov5_n_300e_coco.toml"), load("yolov5_s_300e_coco.toml")
    for part in ("backbone", "neck", "head"):
        assert (n["model"][part].pop("widen_factor"), s["model"][part].pop("widen_factor")) == (
            0.25, 0.5)
    assert n == s
