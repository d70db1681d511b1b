"""ONNX export of the demo RetinaNet: onnxruntime gives PyTorch's detections, fixed and
dynamic input sizes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from core.engine.full_config import load_full_config
from core.tools.export import check_image, compare, export_onnx, run_onnx, torch_detections
from core.tools.inference import load_detector

from .conftest import DEMO

pytest.importorskip("onnxruntime")

# score_thr 0 keeps every candidate: all max_per_img rows are real detections to compare
ALL_SCORES = ["model.head.postprocess.score_thr=0.0"]


@pytest.fixture(scope="module")
def model_and_image(tiny_demo):
    cfg = load_full_config(str(DEMO), ALL_SCORES)
    model = load_detector(cfg, str(tiny_demo.checkpoint), torch.device("cpu"))
    image = next((tiny_demo.run_dir.parent.parent / "cache").rglob("*.jpg"))
    return cfg, model, str(image)


def assert_same(reference, outputs):
    """Same detections: equal counts and sorted scores, and every PyTorch box matched by an
    ONNX box of its label and score (equal scores may come out in either order)."""
    boxes, scores, labels = outputs
    for index, ref in enumerate(reference):
        valid = scores[index] > 0
        assert valid.sum() == len(ref) > 0
        np.testing.assert_allclose(np.sort(scores[index][valid]), np.sort(ref.scores.numpy()),
                                   atol=1e-4)
        assert boxes[index][~valid].sum() == 0 and labels[index][~valid].sum() == 0
    assert compare(reference, outputs) == []


def test_fixed_size_export_matches_pytorch(model_and_image, tmp_path):
    cfg, model, image = model_and_image
    images = check_image(cfg, image, (160, 160))
    path = export_onnx(model, tmp_path / "fixed.onnx", (160, 160), dynamic=False)
    import onnxruntime

    (inputs,) = onnxruntime.InferenceSession(str(path)).get_inputs()
    assert inputs.shape == [1, 3, 160, 160]
    outputs = run_onnx(path, images)
    assert outputs[1].shape == (1, model.head.postprocess.max_per_img)
    assert_same(torch_detections(model, images), outputs)


def test_dynamic_export_matches_pytorch_at_other_sizes_and_batches(model_and_image, tmp_path):
    cfg, model, image = model_and_image
    path = export_onnx(model, tmp_path / "dynamic.onnx", (160, 160), dynamic=True)
    bigger = check_image(cfg, image, (192, 224))
    assert_same(torch_detections(model, bigger), run_onnx(path, bigger))
    pair = torch.cat([check_image(cfg, image, (128, 160)), torch.flip(
        check_image(cfg, image, (128, 160)), dims=[3])])
    assert_same(torch_detections(model, pair), run_onnx(path, pair))


def test_compare_reports_a_moved_box(model_and_image, tmp_path):
    cfg, model, image = model_and_image
    images = check_image(cfg, image, (160, 160))
    reference = torch_detections(model, images)
    boxes = reference[0].boxes.numpy()[None].copy()
    scores = reference[0].scores.numpy()[None]
    labels = reference[0].labels.numpy()[None]
    assert compare(reference, [boxes, scores, labels]) == []
    boxes[0, 3, 0] += 0.01
    (problem,) = compare(reference, [boxes, scores, labels])
    assert problem.startswith("image 0: no match for label")


def test_export_command_writes_and_checks(tiny_demo, model_and_image, tmp_path):
    _, _, image = model_and_image
    out = tmp_path / "demo.onnx"
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "export", str(DEMO), str(tiny_demo.checkpoint),
         "--format", "onnx", "--dynamic", "--size", "160", "160", "--image", image, "--out",
         str(out), "--set", ALL_SCORES[0]],
        capture_output=True, text=True, check=False, env=tiny_demo.env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == (f"wrote {out} (dynamic size); onnxruntime matches "
                                     "PyTorch on a 160x160 image")
    import onnx

    onnx.checker.check_model(str(out))
