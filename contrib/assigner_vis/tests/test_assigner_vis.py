"""assigner_vis on the demo config: one PNG per image, and exactly the assigner's positives."""

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from assigner_vis.cli import main
from assigner_vis.render import dot_size, level_color
from PIL import Image
from torchvision.ops import box_iou

from core.config import load_config
from core.data.datasets.shapes import CACHE_ENV
from core.data.loader import build_dataloader
from core.plugins import get_registries

DEMO_CONFIG = resources.files("plugdet_retinanet") / "configs" / (
    "retinanet_tinynet_fpn_demo_shapes.toml")
NUM_IMAGES = 3
MIN_DRAWN_WIDTH = 512  # narrower images are enlarged to this width


@pytest.fixture(scope="module")
def run_output(tmp_path_factory):
    root = tmp_path_factory.mktemp("assigner_vis")
    overrides = [f"train_dataloader.dataset.num_images={NUM_IMAGES}"]
    out = root / "out"
    args = [str(DEMO_CONFIG), "--out", str(out), "--n", "10", "--show-prior"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(root / "data"))  # generate the few images there
        assert main(args + [a for o in overrides for a in ("--set", o)]) == 0
        yield overrides, out


def expected_positives(overrides: list[str]) -> list[tuple[set[int], list[int], int]]:
    """Per image: positives re-derived from IoU alone (IoU >= pos_iou_thr with some gt, or a
    best prior of a gt, as the demo's MaxIoUAssigner with min_pos_iou 0 defines them) as
    indices into all levels' priors, the first index of each level, and priors per cell."""
    cfg = load_config(str(DEMO_CONFIG), overrides=overrides)
    detector = get_registries().build("detector", cfg["model"], path="model").eval()
    pos_iou_thr = detector.head.assigner.matcher.pos_thr
    table = {**cfg["train_dataloader"], "shuffle": False, "batch_size": 1, "num_workers": 0}
    table["dataset"] = {**table["dataset"],
                        "pipeline": cfg["val_dataloader"]["dataset"]["pipeline"]}
    result = []
    for batch in build_dataloader(table, path="train_dataloader", seed=0):
        with torch.no_grad():
            sizes = [tuple(f.shape[-2:]) for f in detector.extract_feat(batch.images)]
        level_priors = detector.head.prior_generator.grid_priors(sizes, "cpu")
        iou = box_iou(batch.samples[0].gt.boxes, torch.cat(level_priors))  # (M, N)
        positive = iou.max(dim=0).values >= pos_iou_thr
        best = iou.max(dim=1, keepdim=True).values
        positive |= ((iou == best) & (best > 0)).any(dim=0)
        offsets = np.cumsum([0] + [len(p) for p in level_priors]).tolist()
        per_cell = len(level_priors[0]) // (sizes[0][0] * sizes[0][1])
        result.append((set(positive.nonzero().flatten().tolist()), offsets, per_cell))
    return result


def test_one_png_per_image_with_a_legend_band(run_output):
    _, out = run_output
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == NUM_IMAGES
    for image in json.loads((out / "positives.json").read_text()):
        with Image.open(image["img_path"]) as original:
            width, height = original.size
        scale = max(1.0, MIN_DRAWN_WIDTH / width)
        with Image.open(out / f"{Path(image['img_path']).stem}.png") as drawn:
            assert drawn.width == round(width * scale)
            assert drawn.height > round(height * scale)  # the legend band below


def test_drawn_positives_equal_the_assigners_positives(run_output):
    overrides, out = run_output
    summary = json.loads((out / "positives.json").read_text())
    expected = expected_positives(overrides)
    assert len(summary) == len(expected) == NUM_IMAGES
    for image, (want, offsets, per_cell) in zip(summary, expected, strict=True):
        got = {offsets[lv["level"]] + i for lv in image["levels"] for i in lv["prior_inds"]}
        assert got == want and want
        for lv in image["levels"]:
            assert lv["base_inds"] == [i % per_cell for i in lv["prior_inds"]]


def test_a_dot_of_the_level_colour_marks_every_positive(run_output):
    _, out = run_output
    for image in json.loads((out / "positives.json").read_text()):
        png = out / f"{Path(image['img_path']).stem}.png"
        pixels = np.asarray(Image.open(png)).astype(int)
        with Image.open(image["img_path"]) as original:
            scale = max(1.0, MIN_DRAWN_WIDTH / original.width)
        for lv in image["levels"]:
            color, half = level_color(lv["level"]), dot_size(lv["level"]) // 2
            for x, y in lv["centers_original"]:
                col, row = round(x * scale), round(y * scale)
                patch = pixels[row - half : row + half + 1, col - half : col + half + 1]
                assert (np.abs(patch - color).max(axis=2) < 30).any(), (png.name, x, y)


def test_a_model_without_assignments_is_a_clear_error(tmp_path, capsys):
    config = tmp_path / "no_head.toml"
    config.write_text(
        '[model]\ntype = "RetinaNet"\nbackbone = {type = "TinyNet"}\n'
        'head = {type = "NoSuchHead"}\n'
    )
    assert main([str(config), "--out", str(tmp_path / "o")]) == 2
    assert "model.head.type" in capsys.readouterr().err
