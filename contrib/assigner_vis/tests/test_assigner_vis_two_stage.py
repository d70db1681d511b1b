"""assigner_vis on the Faster R-CNN demo config: RPN anchors per level and the RoI stage's
sampled proposals, checked against the IoU rules of the RoI assigner."""

import json
from importlib import resources

import pytest
import torch
from assigner_vis.cli import ROI_SUMMARY_FILE, SUMMARY_FILE, main
from PIL import Image
from torchvision.ops import box_iou

from core.data.datasets.shapes import CACHE_ENV

DEMO_CONFIG = resources.files("plugdet_faster_rcnn") / "configs" / (
    "faster_rcnn_tinynet_fpn_demo_shapes.toml")
NUM_IMAGES = 2
RPN_LEVELS = 3
ROI_IOU_THR = 0.5  # the demo's RoI assigner: positive at or above, negative below
ROI_POS_QUOTA = 128 * 0.25  # the demo's RoI sampler


@pytest.fixture(scope="module")
def run_output(tmp_path_factory):
    root = tmp_path_factory.mktemp("assigner_vis_two_stage")
    out = root / "out"
    args = [str(DEMO_CONFIG), "--out", str(out), "--n", "10",
            "--set", f"train_dataloader.dataset.num_images={NUM_IMAGES}"]
    torch.manual_seed(0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(root / "data"))
        assert main(args) == 0
    return out


def test_rpn_positives_per_level_and_roi_pictures(run_output):
    summary = json.loads((run_output / SUMMARY_FILE).read_text())
    assert len(summary) == NUM_IMAGES
    for image in summary:
        assert len(image["levels"]) == RPN_LEVELS
        assert sum(len(level["prior_inds"]) for level in image["levels"]) >= image["num_gt"]
    pictures = sorted(run_output.glob("*_rois.png"))
    assert len(pictures) == NUM_IMAGES
    assert all(Image.open(p).size[0] >= 512 for p in pictures)


def test_sampled_rois_follow_the_assigner(run_output):
    rois = json.loads((run_output / ROI_SUMMARY_FILE).read_text())
    summary = json.loads((run_output / SUMMARY_FILE).read_text())
    assert len(rois) == NUM_IMAGES
    for image, rpn in zip(rois, summary, strict=True):
        assert image["img_id"] == rpn["img_id"]
        positives, negatives = torch.tensor(image["positives"]), torch.tensor(image["negatives"])
        assert image["num_gt"] <= len(positives) <= ROI_POS_QUOTA  # gt added as proposals
        assert len(negatives) > 0
        gt = torch.tensor(image["gt_boxes"])
        matched = box_iou(positives, gt)[torch.arange(len(positives)),
                                         image["positive_gt_inds"]]
        assert (matched >= ROI_IOU_THR - 1e-4).all()
        assert (box_iou(negatives, gt).max(dim=1).values < ROI_IOU_THR + 1e-4).all()
