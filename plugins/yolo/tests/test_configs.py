"""The shipped configs build and say what they claim."""

from importlib import resources

import pytest

from core.engine.full_config import load_full_config
from core.plugins import get_registries

CONFIGS = resources.files("plugdet_yolo") / "configs"


def load(name):
    return load_full_config(str(CONFIGS / name))  # the count from the dataset


@pytest.mark.parametrize(("name", "num_classes", "widen"), [
    ("yolov8_n_500e_coco.toml", 80, 0.25),
    ("yolov8_s_500e_coco.toml", 80, 0.5),
    ("yolov8_n_demo_shapes.toml", 5, 0.125),
    ("yolov8_n_scratch_raccoon.toml", 1, 0.25),
])
def test_shipped_configs_build(name, num_classes, widen):
    model = get_registries().build("detector", load(name)["model"], path="model")
    assert model.head.num_classes == num_classes
    assert model.backbone.widen_factor == widen
    assert model.neck.out_channels == [int(c * widen) for c in (256, 512, 1024)]
    assert type(model.head.assigner).__name__ == "TaskAlignedAssigner"
    assert model.head.prior_generator.offset == 0.5


def test_coco_configs_are_the_published_recipe():
    for name in ("yolov8_n_500e_coco.toml", "yolov8_s_500e_coco.toml"):
        cfg = load(name)
        optim = cfg["optim"]
        assert (optim["type"], optim["lr"], optim["momentum"], optim["weight_decay"]) == (
            "SGD", 0.01, 0.937, 0.0005)
        assert optim["paramwise"] == {"norm_decay_mult": 0.0, "bias_decay_mult": 0.0}
        assert cfg["train"]["max_epochs"] == 500
        ema, switch = cfg["custom_hooks"]
        assert (ema["type"], ema["ramp_tau"]) == ("EMAHook", 2000)
        assert (switch["type"], switch["close_mosaic_epochs"]) == ("PipelineSwitchHook", 10)
        assert "Mosaic" not in [t["type"] for t in switch["switch_pipeline"]]
        pipeline = [t["type"] for t in cfg["train_dataloader"]["dataset"]["pipeline"]]
        assert pipeline == ["LoadImage", "Mosaic", "RandomAffine", "YOLOv5HSVRandomAug",
                            "RandomFlip", "Normalize"]
        letterbox = cfg["val_dataloader"]["dataset"]["pipeline"][1]
        assert (letterbox["type"], letterbox["scale"]) == ("LetterResize", [640, 640])
        schedulers = [(s["type"], s.get("end_epochs")) for s in cfg["param_schedulers"]]
        assert schedulers == [("LinearWarmup", 3), ("Linear", None)]
        head = cfg["model"]["head"]
        assert head["loss_scale_by_batch"] and head["assigner"]["topk"] == 10
    # n is s with the n width: nothing else differs
    n, s = load("yolov8_n_500e_coco.toml"), load("yolov8_s_500e_coco.toml")
    for part in ("backbone", "neck", "head"):
        assert (n["model"][part].pop("widen_factor"), s["model"][part].pop("widen_factor")) == (
            0.25, 0.5)
    assert n == s
