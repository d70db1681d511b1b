"""AMP on the CPU (``amp = true``): the layers run in bf16, the heads' decoding, assignment,
losses and NMS in float32 (``core.models.precision``), for every YOLO-family head; and a
demo trains, validates and draws its predictions with AMP and channels-last."""

from importlib import resources

import pytest
import torch

from core.engine.full_config import load_full_config
from core.engine.runner import Runner
from core.models.precision import levels_in_float32
from core.plugins import get_registries
from core.structures import DetSample, Instances

TINY = {"deepen_factor": 0.33, "widen_factor": 0.125}
HEADS = {
    "YOLOv8": ("YOLOv8CSPDarknet", "YOLOv8PAFPN", {"type": "YOLOv8Head", "widen_factor": 0.125}),
    "YOLOv5": ("YOLOv5CSPDarknet", "YOLOv5PAFPN", {"type": "YOLOv5Head", "widen_factor": 0.125}),
    "YOLOX": ("YOLOXCSPDarknet", "YOLOXPAFPN", {"type": "YOLOXHead", "widen_factor": 0.125}),
    "RTMDet": ("CSPNeXt", "CSPNeXtPAFPN", {"type": "RTMDetHead", "widen_factor": 0.125}),
}
SIZE = 96


def tiny_detector(name):
    backbone, neck, head = HEADS[name]
    torch.manual_seed(0)
    cfg = {"type": "YOLODetector", "backbone": {"type": backbone, **TINY},
           "neck": {"type": neck, **TINY}, "head": {**head, "num_classes": 3}}
    return get_registries().build("detector", cfg, path="model")


def samples():
    gts = [Instances(torch.tensor([[8.0, 10, 50, 60], [40, 30, 90, 88]]), torch.tensor([0, 2])),
           Instances(torch.tensor([[20.0, 16, 70, 50]]), torch.tensor([1]))]
    return [DetSample(ori_shape=(SIZE, SIZE), img_shape=(SIZE, SIZE), pad_shape=(SIZE, SIZE),
                      gt=gt) for gt in gts]


def bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_under_amp_the_losses_and_detections_are_float32(name):
    model = tiny_detector(name)
    images = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with bf16():
        feats = model.extract_feat(images)
        outputs = model.head(feats)
        losses = model.head.loss(feats, samples())
    assert {o.dtype for branch in outputs for o in branch} == {torch.bfloat16}
    for key, value in losses.items():
        assert value.dtype == torch.float32 and torch.isfinite(value), key
    sum(v for k, v in losses.items() if k.startswith("loss")).backward()
    assert all(p.grad.dtype == torch.float32 for p in model.parameters() if p.grad is not None)

    model.eval()
    with torch.no_grad(), bf16():
        feats = model.extract_feat(images)
        outputs = model.head(feats)
        detections = model.head.predict(feats, samples())
    # the same bf16 layer outputs, post-processed in float32 without autocast
    model.head.forward = lambda _: levels_in_float32(outputs)
    with torch.no_grad():
        reference = model.head.predict(feats, samples())
    for amp, ref in zip(detections, reference, strict=True):
        assert amp.boxes.dtype == torch.float32 and amp.scores.dtype == torch.float32
        assert torch.equal(amp.boxes, ref.boxes) and torch.equal(amp.scores, ref.scores)


def test_yolov8_assignments_under_amp_match_float32_post_processing():
    model = tiny_detector("YOLOv8")
    images = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), bf16():
        feats = model.extract_feat(images)
        outputs = model.head(feats)
        amp = model.head.get_assignments(feats, samples())
    model.head.forward = lambda _: levels_in_float32(outputs)
    reference = model.head.get_assignments(feats, samples())
    assert amp.sample_result.assign_result.quality.dtype == torch.float32
    assert torch.equal(amp.sample_result.pos_mask, reference.sample_result.pos_mask)
    assert torch.equal(amp.sample_result.assign_result.quality,
                       reference.sample_result.assign_result.quality)


def test_demo_with_amp_and_channels_last_trains_validates_and_draws(tmp_path, monkeypatch):
    monkeypatch.setenv("PLUGDET_CACHE", str(tmp_path / "cache"))
    config = str(resources.files("plugdet_yolo") / "configs" / "yolov8_n_demo_shapes.toml")
    cfg = load_full_config(config, [
        "amp=true", "model.channels_last=true",
        "train_dataloader.dataset.num_images=8", "train_dataloader.batch_size=8",
        "val_dataloader.dataset.num_images=4", "test_dataloader.dataset.num_images=4",
        "train.max_epochs=1", "train.val_interval=1", "param_schedulers.0.end=1",
        "param_schedulers.1.end=1", "default_hooks.checkpoint.interval=100",
        "default_hooks.visualization.score_thr=0.0"])
    runner = Runner.from_config(cfg, work_dir=str(tmp_path / "run"), config_path=config)
    runner.train()
    assert runner.settings.amp_dtype == torch.bfloat16
    assert runner.message_hub.get_scalar("train/loss").current() > 0
    drawn = list((tmp_path / "run").rglob("*.png"))
    assert drawn, "the validation predictions were not drawn"
