"""Faster R-CNN under CPU AMP: the RPN and RoI layers in bf16, their losses, proposals and
detections in float32 (``core.models.precision``)."""

from importlib import resources

import torch

from core.engine.full_config import load_full_config
from core.plugins import get_registries
from core.structures import DetBatch, DetSample, Instances

SIZE = 160


def test_losses_and_detections_under_bf16_autocast_are_float32():
    config = resources.files("plugdet_faster_rcnn") / "configs"
    cfg = load_full_config(str(config / "faster_rcnn_tinynet_fpn_demo_shapes.toml"))
    torch.manual_seed(0)
    model = get_registries().build("detector", cfg["model"], path="model")
    shape = (SIZE, SIZE)
    gt = Instances(torch.tensor([[10.0, 20.0, 80.0, 90.0]]), torch.tensor([1]))
    samples = [DetSample(img_shape=shape, ori_shape=shape, pad_shape=shape, gt=gt)] * 2
    batch = DetBatch(torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)),
                     samples)
    layer_dtypes = []
    model.roi_head.bbox_head.register_forward_hook(
        lambda module, args, output: layer_dtypes.append(output[0].dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model.loss(batch)
    assert layer_dtypes == [torch.bfloat16]
    for key, value in losses.items():
        assert value.dtype == torch.float32 and torch.isfinite(value), key
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        detections = model.predict(batch)
    assert all(d.boxes.dtype == torch.float32 and d.scores.dtype == torch.float32
               for d in detections)
