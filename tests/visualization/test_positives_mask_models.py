"""The positive-samples hook and ``assigner_vis`` on the instance-segmentation demos (YOLOv8-seg
and Mask R-CNN, untrained, two 160 px shapes images with masks)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from assigner_vis.cli import ROI_SUMMARY_FILE, SUMMARY_FILE, main
from PIL import Image

from core.config import load_config
from core.data.datasets.shapes import CACHE_ENV
from core.data.loader import build_dataloader
from core.masks import PolygonMasks
from core.plugins import get_registries
from core.visualization import Visualizer
from core.visualization.backends.local import LocalVisBackend
from core.visualization.hooks import PositiveSamplesHook
from core.visualization.positive_grid import PANEL_GAP_PX

NUM_IMAGES = 2
IMAGE_SIZE = 160  # the demos' image side
CONFIGS = {
    "yolov8_seg": resources.files("plugdet_yolo") / "configs" / (
        "yolov8_n_seg_demo_shapes.toml"),
    "mask_rcnn": resources.files("plugdet_faster_rcnn") / "configs" / (
        "mask_rcnn_tinynet_fpn_demo_shapes.toml"),
}
TINY = [f"train_dataloader.dataset.num_images={NUM_IMAGES}",
        f"train_dataloader.batch_size={NUM_IMAGES}",
        "train_dataloader.shuffle=false"]


@pytest.fixture(autouse=True)
def shapes_cache(tmp_path_factory, monkeypatch):
    """The generated shapes images go to one folder shared by the tests of this module."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.getbasetemp() / "shapes_masks"))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_hook_draws_positives_matched_to_ground_truth(name, tmp_path):
    cfg = load_config(str(CONFIGS[name]), overrides=TINY)
    torch.manual_seed(0)
    model = get_registries().build("detector", cfg["model"], path="model").train()
    table = {**cfg["train_dataloader"], "num_workers": 0, "persistent_workers": False}
    loader = build_dataloader(table, path="train_dataloader", seed=0)
    batch = next(iter(loader))
    assert all(isinstance(s.gt.masks, PolygonMasks) and len(s.gt) > 0 for s in batch.samples)

    visualizer = Visualizer(vis_backends=[LocalVisBackend(str(tmp_path))])
    runner = SimpleNamespace(model=model, visualizer=visualizer, iter=0, rank=0,
                             device=torch.device("cpu"), train_loader=loader,
                             logger=SimpleNamespace(info=lambda message: None))
    hook = PositiveSamplesHook(interval=1, num_images=NUM_IMAGES, min_panel=64)
    hook.before_train(runner)
    hook.before_train_iter(runner, 0, batch)
    visualizer.close()

    assert hook.drawings == 1
    (png,) = (tmp_path / "vis_data" / "vis_image").glob("*.png")
    assert png.name == "train_positive_samples_1.png"
    positives = hook.positives(model, batch)
    assert len(positives) == NUM_IMAGES
    levels = len(positives[0].levels)
    with Image.open(png) as drawn:  # one 160 px panel per image (row) and level (column)
        assert drawn.size == (levels * (IMAGE_SIZE + PANEL_GAP_PX) - PANEL_GAP_PX,
                              NUM_IMAGES * (IMAGE_SIZE + PANEL_GAP_PX) - PANEL_GAP_PX)
    for image in positives:
        gt_inds = torch.cat([level.gt_inds for level in image.levels])
        assert len(gt_inds) > 0
        assert int(gt_inds.min()) >= 0 and int(gt_inds.max()) < len(image.sample.gt)
        assert all(len(level.boxes) == len(level.gt_inds) for level in image.levels)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_assigner_vis_writes_a_picture_per_image(name, tmp_path):
    out = tmp_path / "out"
    args = [str(CONFIGS[name]), "--out", str(out), "--n", str(NUM_IMAGES)]
    assert main([*args, "--set", f"train_dataloader.dataset.num_images={NUM_IMAGES}"]) == 0
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert len(summary) == NUM_IMAGES
    for image in summary:
        assert (out / f"{Path(image['img_path']).stem}.png").is_file()
        gt_inds = [i for level in image["levels"] for i in level["gt_inds"]]
        assert gt_inds and all(0 <= i < image["num_gt"] for i in gt_inds)
    if name == "yolov8_seg":
        assert not (out / ROI_SUMMARY_FILE).exists()
        return
    rois = json.loads((out / ROI_SUMMARY_FILE).read_text())
    assert len(rois) == NUM_IMAGES
    for image in rois:
        assert (out / f"{Path(image['img_path']).stem}_rois.png").is_file()
        inds = image["positive_gt_inds"]
        assert inds and all(0 <= i < image["num_gt"] for i in inds)
