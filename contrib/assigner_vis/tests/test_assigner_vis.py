"""assigner_vis on a small RetinaNet: one PNG per image, and exactly the assigner's positives."""

import json

import numpy as np
import pytest
import torch
from assigner_vis.cli import main
from assigner_vis.render import level_color
from PIL import Image
from torchvision.ops import box_iou

from core.config import load_config
from core.data.loader import build_dataloader
from core.plugins import get_registries

NUM_IMAGES = 3
IMAGE_SIZE = 128
POS_IOU_THR = 0.5
DRAWN_SIZE = 512

CONFIG = """
seed = 0

[model]
type = "RetinaNet"
backbone = {{type = "ResNet", depth = 18, base_channels = 8, out_indices = [1, 2, 3]}}

[model.neck]
type = "FPN"
in_channels = [16, 32, 64]
out_channels = 16
start_level = 0
add_extra_convs = "on_output"
num_outs = 5

[model.head]
type = "RetinaHead"
num_classes = 5
in_channels = 16
feat_channels = 16
stacked_convs = 1

[train_dataloader]
batch_size = 2
shuffle = true
[train_dataloader.dataset]
type = "ShapesDataset"
num_images = {num_images}
image_size = {image_size}
split = "train"
data_root = "{data_root}"
pipeline = [
    {{type = "LoadImage"}},
    {{type = "RandomFlip", prob = 0.5}},
    {{type = "Normalize"}},
    {{type = "Pad", size_divisor = 32}},
]

[val_dataloader]
batch_size = 1
[val_dataloader.dataset]
type = "ShapesDataset"
num_images = 2
image_size = {image_size}
split = "val"
data_root = "{data_root}"
pipeline = [
    {{type = "LoadImage"}},
    {{type = "Resize", scale = [96, 96], keep_ratio = true}},
    {{type = "Normalize"}},
    {{type = "Pad", size_divisor = 32}},
]
"""


@pytest.fixture(scope="module")
def run_output(tmp_path_factory):
    root = tmp_path_factory.mktemp("assigner_vis")
    config = root / "retinanet_tiny.toml"
    config.write_text(CONFIG.format(num_images=NUM_IMAGES, image_size=IMAGE_SIZE,
                                    data_root=root / "data"))
    out = root / "out"
    assert main([str(config), "--out", str(out), "--n", "10", "--show-prior"]) == 0
    return config, out


def expected_positives(config) -> list[tuple[set[int], list[int]]]:
    """Positives re-derived from IoU alone (IoU >= 0.5 with some gt, or the best prior of a
    gt) as indices into all levels' priors, with the first index of each level."""
    cfg = load_config(str(config))
    detector = get_registries().build("detector", cfg["model"], path="model")
    table = {**cfg["train_dataloader"], "shuffle": False, "batch_size": 1}
    table["dataset"] = {**table["dataset"],
                        "pipeline": cfg["val_dataloader"]["dataset"]["pipeline"]}
    result = []
    for batch in build_dataloader(table, path="t", seed=0):
        height, width = batch.images.shape[-2:]
        sizes = [(-(-height // s), -(-width // s)) for s in (8, 16, 32, 64, 128)]
        priors = torch.cat(detector.head.prior_generator.grid_priors(sizes, "cpu"))
        iou = box_iou(batch.samples[0].gt.boxes, priors)  # (M, N)
        positive = iou.max(dim=0).values >= POS_IOU_THR
        best = iou.max(dim=1, keepdim=True).values
        positive |= ((iou == best) & (best > 0)).any(dim=0)
        offsets = np.cumsum([0] + [9 * h * w for h, w in sizes]).tolist()
        result.append((set(positive.nonzero().flatten().tolist()), offsets))
    return result


def test_one_png_per_image_with_a_legend_band(run_output):
    _, out = run_output
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == NUM_IMAGES
    for png in pngs:
        with Image.open(png) as image:  # enlarged to 512 pixels wide, legend below
            assert image.width == DRAWN_SIZE and image.height > DRAWN_SIZE


def test_drawn_positives_equal_the_assigners_positives(run_output):
    config, out = run_output
    summary = json.loads((out / "positives.json").read_text())
    expected = expected_positives(config)
    assert len(summary) == len(expected) == NUM_IMAGES
    for image, (want, offsets) in zip(summary, expected, strict=True):
        got = {offsets[lv["level"]] + i for lv in image["levels"] for i in lv["prior_inds"]}
        assert got == want and want
        for lv in image["levels"]:
            assert lv["base_inds"] == [i % 9 for i in lv["prior_inds"]]


def test_level_colours_appear_only_for_levels_with_positives(run_output):
    _, out = run_output
    summary = json.loads((out / "positives.json").read_text())
    for image in summary:
        from pathlib import Path

        pixels = np.asarray(Image.open(out / f"{Path(image['img_path']).stem}.png"))[:DRAWN_SIZE]
        for lv in image["levels"]:
            hits = (np.abs(pixels.astype(int) - level_color(lv["level"])).max(axis=2) < 30).sum()
            assert (hits > 0) == bool(lv["prior_inds"])


def test_a_model_without_assignments_is_a_clear_error(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text(CONFIG.format(num_images=1, image_size=64, data_root=tmp_path / "d")
                      .replace('type = "RetinaHead"', 'type = "NoSuchHead"'))
    assert main([str(config), "--out", str(tmp_path / "o")]) == 2
    assert "model.head.type" in capsys.readouterr().err
