"""The raccoon fine-tuning config that starts from MMDetection's COCO ATSS R50-FPN: it builds
the model of the converter's config with one class (stem and stage 1 frozen), and an
MMDetection file of that model's keys (``mmdet_keys/``, random tensors, saved as MMEngine saves
them) loads through ``load_from``'s path: every tensor from the file, the raccoon row of the
class conv from the head's prior, or from COCO's bear with ``load_from_class_map``, and one log
line that says which.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
from pathlib import Path
from types import ModuleType

import pytest
import torch

from core.api import COCO_CLASSES
from core.engine.builders import build_model
from core.engine.full_config import load_full_config
from core.engine.run_config import class_map
from core.plugins import get_registries
from core.weights.checkpoint import read_checkpoint
from core.weights.loading import convert_checkpoint, load_pretrained_detector, loads_exactly

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parent / "plugdet_retinanet" / "configs" / "pretrained"
RELEASE = "atss_r50_fpn_1x_coco_20200209-985f7bd0.pth"
BEAR = 'load_from_class_map={raccoon = "bear"}'
LOGGER = "plugdet.test_zoo_mmdet_finetune"


def zoo_mmdet() -> ModuleType:
    """``test_zoo_mmdet`` (the key lists and the files made from them), imported from its
    file."""
    spec = importlib.util.spec_from_file_location("retinanet_zoo_mmdet",
                                                  HERE / "test_zoo_mmdet.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("overrides", [[], [BEAR]], ids=["prior", "bear"])
def test_the_coco_atss_file_fine_tunes_the_raccoon_rows(tmp_path, caplog, overrides):
    cfg = load_full_config(str(CONFIGS / "atss_r50_fpn_mmdet_raccoon.toml"), overrides,
                           allow_new=True)
    assert Path(cfg["load_from"]).name == RELEASE
    ours = copy.deepcopy(cfg["model"])
    coco = load_full_config(str(CONFIGS / "atss_r50_fpn_mmdet_coco.toml"))["model"]
    assert ours["head"].pop("num_classes") == 1 and coco["head"].pop("num_classes") == 80
    assert ours == coco  # the converter's model
    model = build_model(cfg, get_registries())
    assert not any(p.requires_grad for p in model.backbone.conv1.parameters())
    assert not any(p.requires_grad for p in model.backbone.layer1.parameters())
    assert all(p.requires_grad for p in model.backbone.layer2.parameters())
    before = {key: value.clone() for key, value in model.state_dict().items()}

    mmdet = zoo_mmdet()
    path = mmdet.mmdet_file(tmp_path / RELEASE, mmdet.key_shapes("atss_r50_fpn_1x_coco"), "ATSS")
    checkpoint = read_checkpoint(path)
    assert (checkpoint.source, checkpoint.classes) == ("mmdet", COCO_CLASSES)
    assert not loads_exactly(checkpoint, ("raccoon",))
    converted, name = convert_checkpoint(checkpoint, model)
    assert name == "mmdet/atss_r50_fpn"
    with caplog.at_level(logging.INFO, logger=LOGGER):
        report = load_pretrained_detector(model, str(path), ("raccoon",),
                                          class_map(cfg, cfg["load_from"]),
                                          logging.getLogger(LOGGER))

    state = model.state_dict()
    for key, value in converted.state.items():
        if key not in converted.class_rows:
            assert torch.equal(state[key], value), key
    assert set(converted.class_rows) == {"head.retina_cls.weight", "head.retina_cls.bias"}
    bear = COCO_CLASSES.index("bear")
    for key in converted.class_rows:
        theirs = converted.state[key]
        assert state[key].shape[0] == 1  # one anchor per cell, one class
        if overrides:
            assert torch.equal(state[key][0], theirs[bear]), key
        else:  # the head's prior, no row of the file
            assert torch.equal(state[key][0], before[key][0]), key
            assert not any(torch.equal(state[key][0], row) for row in theirs), key
    line = f"load_from {RELEASE} (mmdet/atss_r50_fpn): {len(converted.state)} tensors loaded"
    if overrides:
        assert report.kept == (("raccoon", "bear"),) and not report.reinitialised
        assert f"{line}; class rows kept: raccoon <- bear" in caplog.text
    else:
        assert report.kept == () and report.reinitialised == ("raccoon",)
        assert f"{line}; class rows kept: none; re-initialised: raccoon" in caplog.text
