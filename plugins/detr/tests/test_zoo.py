"""The converters of the original RT-DETR checkpoints (``plugdet_detr.zoo``): a file in the
original code's layout (``ema`` -> ``module``, keys ``backbone.*``, ``encoder.*``,
``decoder.*``), written here from plugdet's model by the inverse key map, loads into
``rtdetr_r18vd_6x_coco`` exactly; the other depth's converter and a file that does not fit
are refused."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from plugdet_detr.zoo import (
    REFERENCE_SOURCE,
    REFERENCE_TABLE,
    reference_architecture,
    reference_state,
    ultralytics_rtdetr_table,
)
from torch import Tensor, nn

from core.api import COCO_CLASSES, CheckpointError, PeerCheckpoint, inverted_table, map_key
from core.engine.full_config import load_full_config
from core.plugins import get_registries
from core.tools.weights import main as weights_main
from core.weights.checkpoint import read_checkpoint
from core.weights.loading import find_converter, load_pretrained_detector

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = ROOT / "plugins/detr/plugdet_detr/configs"


def build(config: str, num_classes: int = 80) -> nn.Module:
    cfg = load_full_config(str(CONFIGS / config))
    cfg["model"]["head"]["num_classes"] = num_classes
    return get_registries().build("detector", cfg["model"], path="model")


@pytest.fixture(scope="module")
def r18() -> nn.Module:
    return build("rtdetr_r18vd_6x_coco.toml")


def reference_file_state(model: nn.Module) -> dict[str, Tensor]:
    """The model's keys under the original code's names, every float tensor random (so that
    a tensor loaded into the wrong place would show)."""
    generator = torch.Generator().manual_seed(0)
    back = inverted_table(REFERENCE_TABLE)
    state = {}
    for key, value in model.state_dict().items():
        theirs = map_key(key, back)
        assert theirs is not None, key
        state[theirs] = (torch.randn(value.shape, generator=generator)
                         if value.is_floating_point() else value.clone() + 3)
    return state


def write_reference(path: Path, state: dict[str, Tensor]) -> Path:
    """A training checkpoint of the original code: the EMA model under ``ema.module``."""
    torch.save({"ema": {"module": state, "updates": 1000}, "last_epoch": 71}, path)
    return path


def peer_checkpoint(path: Path) -> PeerCheckpoint:
    """The file as a checkpoint of the original code (its tensors read weights-only)."""
    state = reference_state(torch.load(path, map_location="cpu", weights_only=True))
    assert state is not None
    return PeerCheckpoint(REFERENCE_SOURCE, state, None, "", {}, str(path))


def test_reference_keys_are_the_original_layout(r18):
    keys = set(reference_file_state(r18))
    assert "encoder.input_proj.0.0.weight" in keys
    assert "encoder.encoder.0.layers.0.self_attn.in_proj_weight" in keys
    assert "decoder.decoder.layers.2.cross_attn.sampling_offsets.weight" in keys
    assert "decoder.input_proj.0.conv.weight" in keys
    assert "decoder.dec_bbox_head.2.layers.2.bias" in keys
    assert "backbone.res_layers.1.blocks.0.short.conv.conv.weight" in keys
    assert not any(key.startswith(("neck.", "head.")) for key in keys)


def test_reference_file_loads_every_key_exactly(r18, tmp_path):
    state = reference_file_state(r18)
    checkpoint = peer_checkpoint(write_reference(tmp_path / "rtdetr_r18vd.pth", state))
    assert reference_architecture(checkpoint.state) == "rtdetr_r18vd"
    name, _ = find_converter(checkpoint, r18)
    assert name == "rtdetr/rtdetr_r18vd"
    report = load_pretrained_detector(r18, checkpoint, COCO_CLASSES, None,
                                      logging.getLogger("test"))
    ours = r18.state_dict()
    assert report.loaded == len(ours) == len(state)
    back = inverted_table(REFERENCE_TABLE)
    for key, value in ours.items():
        assert torch.equal(value, state[map_key(key, back)]), key


def test_fitting_to_other_classes_keeps_the_class_rows(r18, tmp_path):
    state = reference_file_state(r18)
    checkpoint = peer_checkpoint(write_reference(tmp_path / "rtdetr_r18vd.pth", state))
    model = build("rtdetr_r18vd_6x_coco.toml", num_classes=3)
    report = load_pretrained_detector(model, checkpoint, ("cat", "dog", "zebra"),
                                      {"zebra": "horse"}, logging.getLogger("test"))
    assert report.kept == (("cat", "cat"), ("dog", "dog"), ("zebra", "horse"))
    rows = [COCO_CLASSES.index(name) for name in ("cat", "dog", "horse")]
    bias = model.head.decoder.dec_score_head[2].bias
    assert torch.equal(bias, state["decoder.dec_score_head.2.bias"][rows])
    embed = model.head.decoder.denoising_class_embed.weight
    assert torch.equal(embed, state["decoder.denoising_class_embed.weight"][[*rows, 80]])


def test_other_depth_and_unfitting_files_are_refused(r18, tmp_path):
    state = reference_file_state(r18)
    checkpoint = peer_checkpoint(write_reference(tmp_path / "rtdetr_r18vd.pth", state))
    r50 = build("rtdetr_r50vd_6x_coco.toml")
    with pytest.raises(CheckpointError, match="rtdetr/rtdetr_r18vd, rtdetr/rtdetr_r50vd"):
        find_converter(checkpoint, r50)
    del state["encoder.lateral_convs.1.conv.weight"]
    state["decoder.extra.weight"] = torch.zeros(1)
    broken = peer_checkpoint(write_reference(tmp_path / "broken.pth", state))
    with pytest.raises(CheckpointError,
                       match=r"(?s)missing keys \(1\): encoder\.lateral_convs\.1\.conv\.weight"
                             r".*unexpected keys \(1\): decoder\.extra\.weight"):
        load_pretrained_detector(r18, broken, COCO_CLASSES, None, logging.getLogger("test"))


def test_reference_state_layouts():
    tensors = {"decoder.dec_score_head.0.weight": torch.zeros(2, 2)}
    assert reference_state({"ema": {"module": tensors}, "model": {}}) == tensors
    assert reference_state({"model": tensors}) == tensors
    assert reference_state({"model": {"head.x": torch.zeros(1)}}) is None


def test_weights_inspect_describes_a_reference_file(r18, tmp_path, capsys):
    path = write_reference(tmp_path / "rtdetr_r18vd.pth", reference_file_state(r18))
    assert read_checkpoint(path).source == REFERENCE_SOURCE
    assert weights_main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "source: rtdetr" in out
    assert "converters of rtdetr files: rtdetr/rtdetr_r18vd, rtdetr/rtdetr_r50vd" in out


def test_ultralytics_table_reaches_every_encoder_and_decoder_key():
    """Every ``neck.*`` / ``head.decoder.*`` key of the R50vd model has an ultralytics
    ``rtdetr-resnet50.yaml`` name (the real file is compared in the ``weights`` env)."""
    model = build("rtdetr_r50vd_6x_coco.toml")
    back = inverted_table(ultralytics_rtdetr_table())
    for key in model.state_dict():
        theirs = map_key(key, back)
        if key.startswith("backbone."):
            assert theirs is None, key
        else:
            assert theirs is not None and theirs.startswith("model."), key
