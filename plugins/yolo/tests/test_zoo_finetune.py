"""The raccoon fine-tuning configs that start from MMYOLO's COCO checkpoints (YOLOX-tiny,
RTMDet-tiny): each builds the model of its converter's config with one class and its backbone
frozen, and an MMYOLO file of that model's keys (``zoo_keys/``, random tensors, saved as
MMEngine saves them) loads through ``load_from``'s path: every tensor from the file, the
raccoon row of the class predictors from the head's prior, or from COCO's bear with
``load_from_class_map``, and one log line that says which.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
from pathlib import Path
from types import ModuleType

import pytest
import torch

from core.engine.builders import build_model
from core.engine.full_config import load_full_config
from core.engine.run_config import class_map
from core.plugins import get_registries
from core.weights.checkpoint import read_checkpoint
from core.weights.loading import convert_checkpoint, load_pretrained_detector, loads_exactly

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
CONFIGS = HERE.parent / "plugdet_yolo" / "configs"
#: COCO's 80 classes as MMYOLO's files name them, ``bear`` at its place (the others'
#: names do not matter here).
COCO_BEAR = 21
COCO = tuple("bear" if i == COCO_BEAR else f"class{i}" for i in range(80))
CASES = {
    # converter: (fine-tuning config, MMYOLO's release file, MMYOLO's backbone type)
    "mmyolo/yolox_tiny": ("yolox_tiny_finetune_raccoon.toml",
                          "yolox_tiny_8xb8-300e_coco_20220919_090908-0e40a6fc.pth",
                          "YOLOXCSPDarknet"),
    "mmyolo/rtmdet_tiny": ("rtmdet_tiny_finetune_raccoon.toml",
                           "rtmdet_tiny_syncbn_fast_8xb32-300e_coco_20230102_140117-dbb1dc83.pth",
                           "CSPNeXt"),
}
BEAR = 'load_from_class_map={raccoon = "bear"}'
LOGGER = "plugdet.test_zoo_finetune"


def zoo_keys() -> ModuleType:
    """``test_zoo_keys`` (the key lists and the files made from them), imported from its file."""
    spec = importlib.util.spec_from_file_location("yolo_zoo_keys", HERE / "test_zoo_keys.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mmyolo_file(path: Path, converter: str, backbone: str) -> Path:
    """Random tensors under the keys of MMYOLO's model, with COCO's classes, as MMEngine
    saves a checkpoint."""
    meta = {"dataset_meta": {"classes": COCO}, "mmengine_version": "0.10.7",
            "cfg": (f"model = dict(\n    type='YOLODetector',\n"
                    f"    backbone=dict(type='{backbone}'))")}
    torch.save({"meta": meta, "state_dict": zoo_keys().peer_state(converter)}, path)
    return path


@pytest.mark.parametrize("overrides", [[], [BEAR]], ids=["prior", "bear"])
@pytest.mark.parametrize("converter", list(CASES))
def test_a_coco_file_fine_tunes_the_raccoon_rows(tmp_path, caplog, converter, overrides):
    config, release, backbone = CASES[converter]
    cfg = load_full_config(str(CONFIGS / config), overrides, allow_new=True)
    assert Path(cfg["load_from"]).name == release
    ours = copy.deepcopy(cfg["model"])
    coco = load_full_config(str(ROOT / zoo_keys().yolo_converters()[converter].config))["model"]
    assert ours["head"].pop("num_classes") == 1 and coco["head"].pop("num_classes") == 80
    assert ours == coco  # the converter's model
    model = build_model(cfg, get_registries())
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    before = {key: value.clone() for key, value in model.state_dict().items()}

    path = mmyolo_file(tmp_path / release, converter, backbone)
    checkpoint = read_checkpoint(path)
    assert (checkpoint.source, checkpoint.classes) == ("mmdet", COCO)
    assert not loads_exactly(checkpoint, ("raccoon",))
    converted, name = convert_checkpoint(checkpoint, model)
    assert name == converter
    with caplog.at_level(logging.INFO, logger=LOGGER):
        report = load_pretrained_detector(model, str(path), ("raccoon",),
                                          class_map(cfg, cfg["load_from"]),
                                          logging.getLogger(LOGGER))

    state = model.state_dict()
    for key, value in converted.state.items():
        if key not in converted.class_rows:
            assert torch.equal(state[key], value), key
    assert len(converted.class_rows) == 6  # weight and bias of the three levels' predictors
    for key in converted.class_rows:
        theirs = converted.state[key]
        if overrides:
            assert torch.equal(state[key][0], theirs[COCO_BEAR]), key
        else:  # the head's prior, no row of the file
            assert torch.equal(state[key][0], before[key][0]), key
            assert not any(torch.equal(state[key][0], row) for row in theirs), key
    line = f"load_from {release} ({converter}): {len(converted.state)} tensors loaded"
    if overrides:
        assert report.kept == (("raccoon", "bear"),) and not report.reinitialised
        assert f"{line}; class rows kept: raccoon <- bear" in caplog.text
    else:
        assert report.kept == () and report.reinitialised == ("raccoon",)
        assert f"{line}; class rows kept: none; re-initialised: raccoon" in caplog.text
