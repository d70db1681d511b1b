"""The positive-sample visualizer on YOLOv5: shape matching split per level and per anchor."""

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from assigner_vis.cli import main
from assigner_vis.render import PANEL_WIDTH_PX, TITLE_BAND_PX, dot_size, level_color
from PIL import Image
from plugdet_yolo.yolov5_head import YOLOV5_ANCHORS

from core.config import load_config
from core.contracts import GTBatch
from core.data.datasets.shapes import CACHE_ENV
from core.data.loader import build_dataloader
from core.plugins import get_registries

DEMO = str(resources.files("plugdet_yolo") / "configs" / "yolov5_n_demo_shapes.toml")
NUM_IMAGES = 2
OVERRIDES = [f"train_dataloader.dataset.num_images={NUM_IMAGES}"]


@pytest.fixture(scope="module")
def run_output(tmp_path_factory):
    root = tmp_path_factory.mktemp("yolov5_vis")
    out = root / "out"
    args = [DEMO, "--out", str(out), "--n", str(NUM_IMAGES), "--per-anchor"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(root / "data"))
        assert main(args + [a for o in OVERRIDES for a in ("--set", o)]) == 0
        yield out, root / "data"


def assigned(data_dir: Path) -> list[list[torch.Tensor]]:
    """Per image and level the assigner's ``gt_inds`` (``(N_l,)``), computed directly."""
    cfg = load_config(DEMO, overrides=OVERRIDES)
    detector = get_registries().build("detector", cfg["model"], path="model").eval()
    table = {**cfg["train_dataloader"], "shuffle": False, "batch_size": 1, "num_workers": 0}
    table["dataset"] = {**table["dataset"],
                        "pipeline": cfg["val_dataloader"]["dataset"]["pipeline"]}
    result = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(data_dir))
        for batch in build_dataloader(table, path="train_dataloader", seed=0):
            with torch.no_grad():
                sizes = [tuple(f.shape[-2:]) for f in detector.extract_feat(batch.images)]
            priors = detector.head.priors(sizes, "cpu")
            gt = GTBatch.from_samples(batch.samples, "cpu")
            gt_inds = detector.head.assigner.assign(priors, gt).gt_inds[0]
            result.append(priors.split_levels(gt_inds))
    return result


def test_the_per_anchor_split_is_the_assigners(run_output):
    out, data_dir = run_output
    summary = json.loads((out / "positives.json").read_text())
    expected = assigned(data_dir)
    assert len(summary) == len(expected) == NUM_IMAGES
    for image, levels in zip(summary, expected, strict=True):
        for lv, gt_inds in zip(image["levels"], levels, strict=True):
            assert [a["size"] for a in lv["anchors"]] == YOLOV5_ANCHORS[lv["level"]]
            for anchor in lv["anchors"]:
                of_anchor = torch.arange(len(gt_inds)) % 3 == anchor["index"]
                chosen = (gt_inds > 0) & of_anchor
                assert anchor["positives"] == int(chosen.sum())
                assert anchor["gt_inds"] == sorted(set((gt_inds[chosen] - 1).tolist()))
        assert sum(a["positives"] for lv in image["levels"] for a in lv["anchors"]) > 0


def test_one_panel_per_level_and_anchor_with_its_positives(run_output):
    out, _ = run_output
    for image in json.loads((out / "positives.json").read_text()):
        stem = Path(image["img_path"]).stem
        with Image.open(image["img_path"]) as original:
            scale = PANEL_WIDTH_PX / original.width
            panel_height = TITLE_BAND_PX + round(original.height * scale)
        pixels = np.asarray(Image.open(out / f"{stem}_anchors.png")).astype(int)
        assert pixels.shape[:2] == (3 * panel_height, 3 * PANEL_WIDTH_PX)
        for lv in image["levels"]:
            color, half = level_color(lv["level"]), dot_size(lv["level"]) // 2
            for base, (x, y) in zip(lv["base_inds"], lv["centers_original"], strict=True):
                col = base * PANEL_WIDTH_PX + round(x * scale)
                row = lv["level"] * panel_height + TITLE_BAND_PX + round(y * scale)
                patch = pixels[row - half: row + half + 1, col - half: col + half + 1]
                assert (np.abs(patch - color).max(axis=2) < 30).any(), (stem, lv["level"], base)
