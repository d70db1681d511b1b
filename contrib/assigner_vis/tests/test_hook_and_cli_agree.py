"""The training-time PositiveSamplesHook and assigner_vis find the same positives: for the same
model (weights from one checkpoint), image and assigner, the same prior indices, anchor slots
and matched gt boxes on every level."""

import json
from importlib import resources

import pytest
from assigner_vis.cli import SUMMARY_FILE, loader_table, main

from core.data.datasets.shapes import CACHE_ENV
from core.data.loader import build_dataloader
from core.engine.checkpoint import save_checkpoint
from core.engine.full_config import load_full_config
from core.engine.randomness import set_random_seed
from core.plugins import get_registries
from core.visualization.hooks import PositiveSamplesHook

CONFIGS = {
    # anchors, two per cell, a static IoU assigner
    "retinanet": resources.files("plugdet_retinanet") / "configs" / (
        "retinanet_tinynet_fpn_demo_shapes.toml"),
    # point priors, an assigner that ranks priors by the model's predictions
    "simota": resources.files("plugdet_retinanet") / "configs" / (
        "retinanet_tinynet_fpn_points_simota_demo_shapes.toml"),
    # three anchors per cell matched by shape
    "yolov5": resources.files("plugdet_yolo") / "configs" / "yolov5_n_demo_shapes.toml",
}
NUM_IMAGES = 2
OVERRIDES = [f"train_dataloader.dataset.num_images={NUM_IMAGES}"]
#: The checkpoint's model has other initial weights than the tool's own seed would give.
CHECKPOINT_SEED = 1


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_hook_and_cli_find_the_same_positives(name, tmp_path):
    config = str(CONFIGS[name])
    cfg = load_full_config(config, overrides=OVERRIDES)
    set_random_seed(CHECKPOINT_SEED)
    model = get_registries().build("detector", cfg["model"], path="model").eval()
    checkpoint = tmp_path / "model.pth"
    save_checkpoint({"state_dict": model.state_dict()}, checkpoint)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(tmp_path / "data"))
        assert main([config, "--out", str(tmp_path / "out"), "--n", str(NUM_IMAGES),
                     "--checkpoint", str(checkpoint),
                     *[a for o in OVERRIDES for a in ("--set", o)]]) == 0
        # the images exactly as the tool feeds them: its loader, one image per batch
        loader = build_dataloader(loader_table(cfg, "train", keep_pipeline=False),
                                  path="train_dataloader", seed=cfg.get("seed", 0))
        hook = PositiveSamplesHook(num_images=1)
        from_hook = [positives.as_dict() for batch in loader
                     for positives in hook.positives(model, batch)]
    from_cli = json.loads((tmp_path / "out" / SUMMARY_FILE).read_text())

    def per_level(images):
        return [[(lv["level"], lv["prior_inds"], lv["base_inds"], lv["gt_inds"])
                 for lv in image["levels"]] for image in images]

    assert len(from_hook) == len(from_cli) == NUM_IMAGES
    assert per_level(from_hook) == per_level(from_cli)
    assert [image["img_path"] for image in from_hook] == [image["img_path"] for image in from_cli]
    assert sum(len(lv["prior_inds"]) for image in from_cli for lv in image["levels"]) > 0
