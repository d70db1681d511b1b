"""assigner_vis on point priors: the SimOTA and DSL point-prior RetinaNet demos from a
checkpoint (dots at the points, stride-sized squares, one anchor column), and the point
helpers by hand."""

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from assigner_vis.cli import SUMMARY_FILE, main
from assigner_vis.render import (
    PANEL_WIDTH_PX,
    TITLE_BAND_PX,
    anchor_panel_title,
    dot_size,
    legend_lines,
    level_color,
)
from PIL import Image

from core.config import load_config
from core.data.datasets.shapes import CACHE_ENV
from core.data.loader import build_dataloader
from core.engine.checkpoint import save_checkpoint
from core.engine.full_config import load_full_config
from core.engine.randomness import set_random_seed
from core.errors import ConfigError
from core.plugins import get_registries
from core.structures import DetSample, Instances
from core.visualization.positives import ImagePositives, LevelPositives, prior_points_and_boxes

CONFIGS = {
    name: str(resources.files("plugdet_retinanet") / "configs" / (
        f"retinanet_tinynet_fpn_points_{name}_demo_shapes.toml"))
    for name in ("simota", "dsl")
}
NUM_IMAGES = 2
OVERRIDES = [f"train_dataloader.dataset.num_images={NUM_IMAGES}"]
MIN_DRAWN_WIDTH = 512
LEVELS = 3
#: A checkpoint's weights come from a model of another seed than the visualizer's own.
CHECKPOINT_SEED = 1
COLOR_TOLERANCE = 30


def build_model(config: str, seed: int):
    set_random_seed(seed)
    cfg = load_full_config(config, overrides=OVERRIDES)
    return get_registries().build("detector", cfg["model"], path="model")


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def run_output(request, tmp_path_factory):
    config = CONFIGS[request.param]
    root = tmp_path_factory.mktemp(f"points_{request.param}")
    detector = build_model(config, CHECKPOINT_SEED)
    checkpoint = root / "model.pth"
    save_checkpoint({"meta": {"epoch": 3, "iter": 30}, "state_dict": detector.state_dict()},
                    checkpoint)
    out = root / "out"
    args = [config, "--out", str(out), "--n", str(NUM_IMAGES), "--checkpoint", str(checkpoint),
            "--show-prior", "--per-anchor"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(root / "data"))
        assert main(args + [a for o in OVERRIDES for a in ("--set", o)]) == 0
        yield config, detector.eval(), out, json.loads((out / SUMMARY_FILE).read_text())


def test_drawn_positives_are_the_loaded_models_assignments(run_output):
    config, detector, _, summary = run_output
    cfg = load_config(config, overrides=OVERRIDES)
    table = {**cfg["train_dataloader"], "shuffle": False, "batch_size": 1, "num_workers": 0}
    table["dataset"] = {**table["dataset"],
                        "pipeline": cfg["val_dataloader"]["dataset"]["pipeline"]}
    batches = list(build_dataloader(table, path="train_dataloader", seed=0))
    assert len(summary) == len(batches) == NUM_IMAGES
    for image, batch in zip(summary, batches, strict=True):
        with torch.no_grad():
            found = detector.head.get_assignments(detector.extract_feat(batch.images),
                                                  batch.samples)
        assert [(lv["prior_inds"], lv["gt_inds"]) for lv in image["levels"]] == [
            (inds.tolist(), gt.tolist())
            for inds, gt in zip(found.pos_inds[0], found.pos_gt_inds[0], strict=True)]
        for lv, points in zip(image["levels"], found.priors, strict=True):
            assert points.shape[-1] == 2 and lv["prior_type"] == "point"
            assert lv["prior_sizes"] is None and lv["base_inds"] == [0] * len(lv["prior_inds"])
            assert lv["anchors"] == [{"index": 0, "size": None,
                                      "positives": len(lv["prior_inds"]),
                                      "gt_inds": sorted(set(lv["gt_inds"]))}]
            sample = batch.samples[0]
            want = ((points[lv["prior_inds"]] - torch.tensor(sample.pad_offset))
                    / torch.tensor(sample.scale_factor))
            assert torch.allclose(torch.tensor(lv["centers_original"]).reshape(-1, 2), want)
        assert sum(len(lv["prior_inds"]) for lv in image["levels"]) > 0
        assert image["weights"]["state"] == "state_dict" and image["weights"]["epoch"] == 3


def square_sides(col: int, row: int, side: float) -> list[tuple[slice, slice]]:
    """Pixel strips (3 pixels thick) of the four sides of a square of ``side`` pixels centred
    on ``(col, row)``."""
    lo_x, hi_x = round(col - side / 2), round(col + side / 2)
    lo_y, hi_y = round(row - side / 2), round(row + side / 2)
    along_x, along_y = slice(lo_x + 2, hi_x - 1), slice(lo_y + 2, hi_y - 1)
    return [(slice(lo_y - 1, lo_y + 2), along_x), (slice(hi_y - 1, hi_y + 2), along_x),
            (along_y, slice(lo_x - 1, lo_x + 2)), (along_y, slice(hi_x - 1, hi_x + 2))]


def dashed_in_color(pixels: np.ndarray, strip: tuple[slice, slice], color: np.ndarray) -> bool:
    """A dashed line of ``color`` runs along ``strip``: at least a fifth of its positions
    (along its length) have a pixel of that colour across its thickness."""
    close = np.abs(pixels[strip] - color).max(axis=2) < COLOR_TOLERANCE
    across = 0 if close.shape[0] == 3 else 1
    return bool(close.any(axis=across).mean() > 0.2)


def test_dots_at_the_points_and_stride_squares_around_them(run_output):
    _, _, out, summary = run_output
    for image in summary:
        png = out / f"{Path(image['img_path']).stem}.png"
        pixels = np.asarray(Image.open(png)).astype(int)
        with Image.open(image["img_path"]) as original:
            scale = max(1.0, MIN_DRAWN_WIDTH / original.width)
        for lv in image["levels"]:
            color, half = np.array(level_color(lv["level"])), dot_size(lv["level"]) // 2
            side = lv["stride"][0] * scale
            for x, y in lv["centers_original"]:
                col, row = round(x * scale), round(y * scale)
                dot = pixels[row - half: row + half + 1, col - half: col + half + 1]
                assert (np.abs(dot - color).max(axis=2) < COLOR_TOLERANCE).any(), (png, x, y)
                # the dashed square, one stride wide around the point: some of its sides
                # show the level colour (others may lie under a coarser level's square)
                assert any(dashed_in_color(pixels, strip, color)
                           for strip in square_sides(col, row, side)), (png, x, y)


def test_per_anchor_panels_have_one_column_for_points(run_output):
    _, _, out, summary = run_output
    for image in summary:
        with Image.open(image["img_path"]) as original:
            panel_height = TITLE_BAND_PX + round(original.height * PANEL_WIDTH_PX
                                                 / original.width)
        with Image.open(out / f"{Path(image['img_path']).stem}_anchors.png") as panels:
            assert (panels.height, panels.width) == (LEVELS * panel_height, PANEL_WIDTH_PX)


def test_points_get_stride_squares_and_boxes_their_centres():
    points = torch.tensor([[10.0, 20.0], [4.0, 4.0]])
    centres, squares = prior_points_and_boxes(points, stride=(8.0, 16.0))  # (sy, sx)
    assert torch.equal(centres, points)
    assert torch.equal(squares, torch.tensor([[2.0, 16.0, 18.0, 24.0], [-4.0, 0.0, 12.0, 8.0]]))
    boxes = torch.tensor([[0.0, 0.0, 8.0, 4.0]])
    centres, same = prior_points_and_boxes(boxes, stride=(8.0, 8.0))
    assert torch.equal(centres, torch.tensor([[4.0, 2.0]])) and torch.equal(same, boxes)
    with pytest.raises(ConfigError, match=r"\(3, 3\)"):
        prior_points_and_boxes(torch.zeros(3, 3), stride=(8.0, 8.0))


def test_a_point_level_is_labelled_point_in_legend_title_and_json():
    points = torch.tensor([[4.0, 4.0], [12.0, 4.0]])
    _, squares = prior_points_and_boxes(points, (8.0, 8.0))
    level = LevelPositives(
        level=0, stride=(8.0, 8.0), priors_per_cell=1, prior_inds=torch.tensor([0, 1]),
        base_inds=torch.tensor([0, 0]), gt_inds=torch.tensor([2, 2]), points=points,
        points_original=points, boxes=squares, boxes_original=squares,
        anchor_sizes=torch.zeros(1, 2), point_priors=True)
    assert anchor_panel_title(level, 0) == "L0 s8 #0 point: 2 pos / 1 gt"
    gt = Instances(torch.tensor([[0.0, 0.0, 9.0, 9.0]] * 3), torch.zeros(3, dtype=torch.int64))
    positives = ImagePositives(DetSample(gt=gt), [level])
    lines = legend_lines(positives, show_prior=True)
    assert lines[1] == "level 0 (stride 8): 2 positive | #0 point (2)"
    assert "stride-sized cell" in lines[0]
    assert "stride-sized" not in legend_lines(positives)[0]
    summary = positives.as_dict({"state": "initial"})["levels"][0]
    assert summary["prior_type"] == "point" and summary["prior_sizes"] is None
    assert summary["centers_original"] == points.tolist()
    assert level.anchor_summary() == [{"index": 0, "size": None, "positives": 2,
                                       "gt_inds": [2]}]
