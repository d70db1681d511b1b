"""MMDetection's own Faster R-CNN R50-FPN against the converted checkpoint in the model the
shipped config builds, stage by stage: the RPN's raw outputs within 1e-4, the proposals (as a
set: proposals of equal score may come in either order), the box head's raw outputs on the
same RoIs within 1e-4, the detections (boxes within 1e-3 px, same labels, scores within
1e-4).

The reference comes from MMDetection's code with its NMS op replaced by torchvision's and its
RoIAlign run through mmcv's ``use_torchvision`` switch (see ``make_reference.py``, run in a
separate environment); the test runs when ``PLUGDET_MMDET_REFERENCE`` names the directory it
wrote and is skipped otherwise.
"""

import os
from pathlib import Path

import pytest
import torch
from torchvision.ops import box_iou

from core.api import load_config, read_checkpoint
from core.plugins import get_registries
from core.structures import DetSample
from core.weights.loading import convert_checkpoint

REFERENCE = os.environ.get("PLUGDET_MMDET_REFERENCE", "")
CONFIG = (Path(__file__).resolve().parents[2] / "configs" / "pretrained"
          / "faster_rcnn_r50_fpn_mmdet_coco.toml")
PADDED = (256, 384)
IMAGE_SIZES = [(256, 320), (224, 300)]
OUTPUT_TOL = 1e-4
BOX_TOL = 1e-3
SCORE_TOL = 1e-4
SAME_BOX_IOU = 1 - 1e-5

pytestmark = pytest.mark.skipif(not REFERENCE, reason="PLUGDET_MMDET_REFERENCE is not set")


def test_same_outputs_and_detections_as_mmdetection():
    reference = Path(REFERENCE)
    checkpoint = read_checkpoint(reference / "faster_rcnn.pth")
    model = get_registries().build("detector", load_config(str(CONFIG))["model"],
                                   path="model").eval()
    converted, used = convert_checkpoint(checkpoint, model)
    assert used == "mmdet/faster_rcnn_r50_fpn"
    model.load_state_dict(converted.state, strict=True)
    expected = torch.load(reference / "faster_rcnn_out.pt", weights_only=True)
    images = torch.load(reference / "images.pt", weights_only=True)
    samples = [DetSample(img_shape=size, ori_shape=size, pad_shape=PADDED)
               for size in IMAGE_SIZES]
    with torch.no_grad():
        feats = model.extract_feat(images)
        rpn_outputs = model.rpn_head(feats)
        proposals = model.rpn_head.predict(feats, samples)
        cls, deltas = model.roi_head(feats, expected["rois"])
        detections = model.roi_head.predict(feats, proposals, samples)
    for mine, theirs in zip(rpn_outputs, expected["rpn_outputs"], strict=True):
        for level, reference_level in zip(mine, theirs, strict=True):
            torch.testing.assert_close(level, reference_level, rtol=0, atol=OUTPUT_TOL)
    for mine, theirs in zip(proposals, expected["proposals"], strict=True):
        assert len(mine) == len(theirs) > 300
        overlap = box_iou(mine.boxes, theirs)
        assert (overlap.max(dim=1).values > SAME_BOX_IOU).all()
        assert (overlap.max(dim=0).values > SAME_BOX_IOU).all()
    theirs_cls, theirs_deltas = expected["box_outputs"]
    torch.testing.assert_close(cls, theirs_cls, rtol=0, atol=OUTPUT_TOL)
    torch.testing.assert_close(deltas.flatten(1), theirs_deltas, rtol=0, atol=OUTPUT_TOL)
    for mine, theirs in zip(detections, expected["detections"], strict=True):
        assert len(theirs["boxes"]) > 50, "the test needs a long detection list"
        assert len(mine) == len(theirs["boxes"])
        torch.testing.assert_close(mine.labels, theirs["labels"], rtol=0, atol=0)
        torch.testing.assert_close(mine.scores, theirs["scores"], rtol=0, atol=SCORE_TOL)
        torch.testing.assert_close(mine.boxes, theirs["boxes"], rtol=0, atol=BOX_TOL)
