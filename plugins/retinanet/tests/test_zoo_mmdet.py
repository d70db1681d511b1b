"""MMDetection's RetinaNet R50-FPN and ATSS R50-FPN checkpoints through their weight converters
into the models the shipped configs build.

MMDetection cannot be installed in the test environment (mmcv's compiled ops do not build
against this torch), so these tests compare no outputs: ``mmdet_parity/`` does, against
MMDetection's own code run in a separate environment (opt-in). The files here are made from the
``state_dict()`` key lists with shapes of MMDetection 3.3.0's models built from its configs
(``mmdet_keys/``): random tensors of those shapes, saved as MMEngine saves them
(``{"meta": {"dataset_meta": {"classes": ...}, "cfg": ...}, "state_dict": ...}``). The tests
check that every key of such a file has a place, that every parameter and buffer of the model
is filled with the tensor the key table names (shapes equal), and that files which do not fit
are refused with the keys listed.
"""

from pathlib import Path

import pytest
import torch
from plugdet_retinanet.key_maps import MMDET_ATSS, MMDET_RETINANET

from core.api import COCO_CLASSES, CheckpointError, load_config, map_key, read_checkpoint
from core.plugins import get_registries
from core.weights.loading import convert_checkpoint

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parents[0] / "configs" / "pretrained"
BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
CASES = {
    # converter: (key list, MMDetection model type, shipped config, key table)
    "mmdet/retinanet_r50_fpn": ("retinanet_r50_fpn_1x_coco", "RetinaNet",
                                "retinanet_r50_fpn_mmdet_coco", MMDET_RETINANET),
    "mmdet/atss_r50_fpn": ("atss_r50_fpn_1x_coco", "ATSS", "atss_r50_fpn_mmdet_coco",
                           MMDET_ATSS),
}


def key_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """The key list ``mmdet_keys/<name>.txt`` with ``X.[BN] (C,)`` expanded."""
    shapes: dict[str, tuple[int, ...]] = {}
    for line in (HERE / "mmdet_keys" / f"{name}.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        key, shape_text = line.split(" ", 1)
        shape = tuple(int(size) for size in shape_text.strip("()").split(",") if size.strip())
        if key.endswith(".[BN]"):
            for suffix in BN_SUFFIXES:
                shapes[f"{key[:-len('[BN]')]}{suffix}"] = (
                    () if suffix == "num_batches_tracked" else shape)
        else:
            shapes[key] = shape
    return shapes


def mmdet_file(path: Path, shapes: dict[str, tuple[int, ...]], model_type: str) -> Path:
    generator = torch.Generator().manual_seed(0)
    state = {key: (torch.tensor(0) if key.endswith("num_batches_tracked")
                   else torch.randn(shape, generator=generator))
             for key, shape in shapes.items()}
    meta = {"dataset_meta": {"classes": COCO_CLASSES}, "mmengine_version": "0.10.7",
            "cfg": f"model = dict(\n    type='{model_type}',\n    backbone=dict(type='ResNet'))"}
    torch.save({"meta": meta, "state_dict": state}, path)
    return path


def plugdet_model(config: str):
    cfg = load_config(str(CONFIGS / f"{config}.toml"))["model"]
    return get_registries().build("detector", cfg, path="model")


@pytest.mark.parametrize("converter", list(CASES))
def test_every_key_maps_and_every_parameter_is_filled(converter, tmp_path):
    keys, model_type, config, table = CASES[converter]
    shapes = key_shapes(keys)
    checkpoint = read_checkpoint(mmdet_file(tmp_path / "model.pth", shapes, model_type))
    assert (checkpoint.source, checkpoint.architecture) == ("mmdet", model_type)
    assert checkpoint.classes == COCO_CLASSES
    model = plugdet_model(config)
    converted, name = convert_checkpoint(checkpoint, model)
    assert name == converter
    ours = model.state_dict()
    assert set(converted.state) == set(ours)
    assert len(converted.state) == len(shapes)
    for key, value in checkpoint.state.items():
        target = map_key(key, table)
        assert target is not None, key
        assert converted.state[target] is value, key
        assert value.shape == ours[target].shape, key
    assert converted.classes == COCO_CLASSES
    assert set(converted.class_rows) == {"head.retina_cls.weight", "head.retina_cls.bias"}
    model.load_state_dict(converted.state, strict=True)


def test_a_file_that_does_not_fit_is_refused_with_its_keys(tmp_path):
    shapes = key_shapes("retinanet_r50_fpn_1x_coco")
    del shapes["bbox_head.retina_reg.bias"]
    shapes["bbox_head.extra.weight"] = (1,)
    shapes["neck.fpn_convs.3.conv.weight"] = (256, 256, 3, 3)  # P6 on P5: not this model
    checkpoint = read_checkpoint(mmdet_file(tmp_path / "model.pth", shapes, "RetinaNet"))
    with pytest.raises(CheckpointError) as error:
        convert_checkpoint(checkpoint, plugdet_model("retinanet_r50_fpn_mmdet_coco"))
    message = str(error.value)
    assert str(checkpoint.path) in message
    for key in ("bbox_head.retina_reg.bias", "bbox_head.extra.weight",
                "neck.fpn_convs.3.conv.weight"):
        assert key in message


def test_an_atss_file_is_not_read_into_a_retinanet_model(tmp_path):
    checkpoint = read_checkpoint(
        mmdet_file(tmp_path / "atss.pth", key_shapes("atss_r50_fpn_1x_coco"), "ATSS"))
    with pytest.raises(CheckpointError, match="mmdet/retinanet_r50_fpn"):
        convert_checkpoint(checkpoint, plugdet_model("retinanet_r50_fpn_mmdet_coco"))
