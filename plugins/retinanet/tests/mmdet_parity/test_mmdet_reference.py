"""MMDetection's own RetinaNet R50-FPN and ATSS R50-FPN against the converted checkpoints in the
models the shipped configs build: raw head outputs within 1e-4, detections (boxes within
1e-3 px, same labels, scores within 1e-4).

The reference comes from MMDetection's code with its NMS op replaced by torchvision's (see
``make_reference.py``, run in a separate environment); the test runs when
``PLUGDET_MMDET_REFERENCE`` names the directory it wrote and is skipped otherwise.
"""

import os
from pathlib import Path

import pytest
import torch

from core.api import load_config, read_checkpoint
from core.plugins import get_registries
from core.structures import DetSample
from core.weights.loading import convert_checkpoint

REFERENCE = os.environ.get("PLUGDET_MMDET_REFERENCE", "")
CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "pretrained"
PADDED = (256, 384)
IMAGE_SIZES = [(256, 320), (224, 300)]
OUTPUT_TOL = 1e-4
BOX_TOL = 1e-3
SCORE_TOL = 1e-4

pytestmark = pytest.mark.skipif(not REFERENCE, reason="PLUGDET_MMDET_REFERENCE is not set")


@pytest.mark.parametrize("name, config, converter", [
    ("retinanet", "retinanet_r50_fpn_mmdet_coco", "mmdet/retinanet_r50_fpn"),
    ("atss", "atss_r50_fpn_mmdet_coco", "mmdet/atss_r50_fpn"),
])
def test_same_outputs_and_detections_as_mmdetection(name, config, converter):
    reference = Path(REFERENCE)
    checkpoint = read_checkpoint(reference / f"{name}.pth")
    cfg = load_config(str(CONFIGS / f"{config}.toml"))["model"]
    model = get_registries().build("detector", cfg, path="model").eval()
    converted, used = convert_checkpoint(checkpoint, model)
    assert used == converter
    model.load_state_dict(converted.state, strict=True)
    expected = torch.load(reference / f"{name}_out.pt", weights_only=True)
    images = torch.load(reference / "images.pt", weights_only=True)
    samples = [DetSample(img_shape=size, ori_shape=size, pad_shape=PADDED)
               for size in IMAGE_SIZES]
    with torch.no_grad():
        feats = model.extract_feat(images)
        outputs = model.head(feats)
        detections = model.head.predict(feats, samples)
    for mine, theirs in zip(outputs, expected["outputs"], strict=True):
        for level, reference_level in zip(mine, theirs, strict=True):
            torch.testing.assert_close(level, reference_level, rtol=0, atol=OUTPUT_TOL)
    for mine, theirs in zip(detections, expected["detections"], strict=True):
        assert len(theirs["boxes"]) > 50, "the test needs a long detection list"
        assert len(mine) == len(theirs["boxes"])
        torch.testing.assert_close(mine.labels, theirs["labels"], rtol=0, atol=0)
        torch.testing.assert_close(mine.scores, theirs["scores"], rtol=0, atol=SCORE_TOL)
        torch.testing.assert_close(mine.boxes, theirs["boxes"], rtol=0, atol=BOX_TOL)
