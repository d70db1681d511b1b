"""ONNX export of YOLOv8-seg: ``plugdet export`` writes boxes, scores, labels and masks, and
onnxruntime gives ``predict``'s detections and masks at fixed and dynamic input sizes."""

from importlib import resources

import numpy as np
import pytest
import torch

from core.api import nms_top_k
from core.cli import main as plugdet
from core.engine.full_config import load_full_config
from core.plugins import get_registries
from core.tools import export
from core.tools.onnx_detector import ExportableDetector

pytest.importorskip("onnxruntime")

CONFIG = str(resources.files("plugdet_yolo") / "configs" / "yolov8_n_seg_demo_shapes.toml")


def distinct_score_model():
    """The demo's YOLOv8-seg with its BN statistics taken from random images and random
    predictor convolutions: varied scores, boxes and masks without training (an untrained
    head ties most scores, and ties leave the order of detections open)."""
    torch.manual_seed(0)
    model = get_registries().build("detector", load_full_config(CONFIG)["model"], path="model")
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average of the batches seen
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.train()
        model.head(model.extract_feat(torch.rand(4, 3, 96, 128, generator=generator)))
        head = model.head
        for branches, scale in ((head.cls_branches, 0.05), (head.reg_branches, 0.01),
                                (head.mask_branches, 0.05)):
            for branch in branches:
                conv = branch[-1]
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * scale)
                conv.bias.copy_(torch.randn(conv.bias.shape, generator=generator) * 0.3)
    return model.eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = distinct_score_model()
    path = tmp_path_factory.mktemp("seg_export") / "seg.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    return model, path


def images(shape, batch=2, seed=4):
    return torch.rand(batch, 3, *shape, generator=torch.Generator().manual_seed(seed))


def test_export_outputs_equal_predict(checkpoint):
    """Eager ``export_outputs``: K = max_per_img rows, the detections and masks of
    ``predict``, unused rows zero with empty masks."""
    model, _ = checkpoint
    inputs = images((96, 128))
    reference = export.torch_detections(model, inputs)
    with torch.no_grad():
        boxes, scores, labels, masks = ExportableDetector(model)(inputs)
    assert masks.shape == (2, 50, 96, 128) and masks.dtype == torch.bool
    counts = (scores > 0).sum(dim=1).tolist()
    assert counts == [len(r) for r in reference] and min(counts) > 0 and max(counts) < 50
    assert export.compare(reference, [t.numpy() for t in (boxes, scores, labels, masks)]) == []
    unused = scores == 0
    assert not masks[unused].any() and not boxes[unused].any() and not labels[unused].any()
    assert all(bool(r.masks.any(dim=(1, 2)).all()) for r in reference)


def test_plugdet_export_writes_masks_equal_to_predict(checkpoint, tmp_path, capsys):
    model, path = checkpoint
    out = tmp_path / "seg.onnx"
    status = plugdet(["export", CONFIG, str(path), "--dynamic", "--size", "96", "128",
                      "--out", str(out)])
    assert status == 0
    assert capsys.readouterr().out.strip() == (
        f"wrote {out} (dynamic size, with masks); onnxruntime matches PyTorch on a 96x128 "
        "image")
    for shape in ((96, 128), (160, 160)):
        inputs = images(shape)
        outputs = export.run_onnx(out, inputs)
        assert outputs[3].shape == (2, 50, *shape) and outputs[3].dtype == np.bool_
        assert export.compare(export.torch_detections(model, inputs), outputs) == []


def test_fixed_size_export(checkpoint, tmp_path):
    model, _ = checkpoint
    out = export.export_onnx(model, tmp_path / "fixed.onnx", (128, 96), dynamic=False)
    inputs = images((128, 96), batch=1)
    outputs = export.run_onnx(out, inputs)
    assert [o.shape for o in outputs] == [(1, 50, 4), (1, 50), (1, 50), (1, 50, 128, 96)]
    assert export.compare(export.torch_detections(model, inputs), outputs) == []


def test_a_detection_head_keeps_the_dense_export_path():
    cfg = load_full_config(CONFIG)["model"]
    cfg["head"] = {key: value for key, value in cfg["head"].items()
                   if key not in ("num_masks", "proto_channels", "loss_mask_weight")}
    cfg["head"]["type"] = "YOLOv8Head"
    model = get_registries().build("detector", cfg, path="model")
    assert model.export_outputs is None
    assert distinct_score_model().export_outputs is not None


def test_nms_top_k_suppresses_per_image_and_class():
    """Two images: in image 0 the second box overlaps the first (same class, suppressed),
    the third has another class (kept); image 1 has one candidate under the threshold."""
    boxes = torch.tensor([[[0.0, 0, 10, 10], [1, 1, 10, 10], [1, 1, 10, 10]],
                          [[0.0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 5, 5]]])
    scores = torch.tensor([[0.9, 0.8, 0.7], [0.6, 0.01, 0.5]])
    labels = torch.tensor([[1, 1, 0], [1, 1, 1]])
    order, top = nms_top_k(boxes, scores, labels, num_classes=2, score_thr=0.05,
                           iou_threshold=0.5, count=4)
    assert torch.equal(top, torch.tensor([[0.9, 0.7, 0, 0], [0.6, 0.5, 0, 0]]))
    assert order[:, :2].tolist() == [[0, 2], [0, 2]]
    assert bool((order < 3 + 4).all())  # the 3 candidates, then the 4 padding rows
