"""MMDetection's Faster R-CNN R50-FPN checkpoints through their weight converter into the model
the shipped config builds.

MMDetection cannot be installed in the test environment (mmcv's compiled ops do not build
against this torch), so these tests compare no outputs: ``mmdet_parity/`` does, against
MMDetection's own code run in a separate environment (opt-in). The files here are made from the
``state_dict()`` key list with shapes of MMDetection 3.3.0's model built from its config
(``mmdet_keys/``): random tensors of those shapes, saved as MMEngine saves them
(``{"meta": {"dataset_meta": {"classes": ...}, "cfg": ...}, "state_dict": ...}``). The tests
check that every key of such a file has a place, that every parameter and buffer of the model
is filled with the tensor the key table names (shapes equal), and that a file whose box
predictor does not fit is refused.
"""

from pathlib import Path

import pytest
import torch
from plugdet_faster_rcnn.key_maps import MMDET_FASTER_RCNN

from core.api import COCO_CLASSES, CheckpointError, load_config, map_key, read_checkpoint
from core.plugins import get_registries
from core.weights.loading import convert_checkpoint

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parents[0] / "configs" / "pretrained" / "faster_rcnn_r50_fpn_mmdet_coco.toml"
BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def key_shapes() -> dict[str, tuple[int, ...]]:
    """The key list ``mmdet_keys/faster-rcnn_r50_fpn_1x_coco.txt`` with ``X.[BN] (C,)``
    expanded."""
    shapes: dict[str, tuple[int, ...]] = {}
    text = (HERE / "mmdet_keys" / "faster-rcnn_r50_fpn_1x_coco.txt").read_text()
    for line in text.splitlines():
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


def mmdet_file(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    generator = torch.Generator().manual_seed(0)
    state = {key: (torch.tensor(0) if key.endswith("num_batches_tracked")
                   else torch.randn(shape, generator=generator))
             for key, shape in shapes.items()}
    meta = {"dataset_meta": {"classes": COCO_CLASSES}, "mmengine_version": "0.10.7",
            "cfg": "model = dict(\n    type='FasterRCNN',\n    backbone=dict(type='ResNet'))"}
    torch.save({"meta": meta, "state_dict": state}, path)
    return path


def plugdet_model():
    cfg = load_config(str(CONFIG))["model"]
    return get_registries().build("detector", cfg, path="model")


def test_every_key_maps_and_every_parameter_is_filled(tmp_path):
    shapes = key_shapes()
    checkpoint = read_checkpoint(mmdet_file(tmp_path / "model.pth", shapes))
    assert (checkpoint.source, checkpoint.architecture) == ("mmdet", "FasterRCNN")
    model = plugdet_model()
    converted, name = convert_checkpoint(checkpoint, model)
    assert name == "mmdet/faster_rcnn_r50_fpn"
    ours = model.state_dict()
    assert set(converted.state) == set(ours)
    assert len(converted.state) == len(shapes)
    for key, value in checkpoint.state.items():
        target = map_key(key, MMDET_FASTER_RCNN)
        assert target is not None, key
        assert converted.state[target] is value, key  # background last in both
        assert value.shape == ours[target].shape, key
    assert converted.classes == COCO_CLASSES
    model.load_state_dict(converted.state, strict=True)


def test_a_box_predictor_without_class_specific_boxes_is_refused(tmp_path):
    shapes = key_shapes()
    shapes["roi_head.bbox_head.fc_reg.weight"] = (4, 1024)  # class-agnostic regression
    shapes["roi_head.bbox_head.fc_reg.bias"] = (4,)
    checkpoint = read_checkpoint(mmdet_file(tmp_path / "model.pth", shapes))
    with pytest.raises(CheckpointError, match="81 class rows and 4 box rows"):
        convert_checkpoint(checkpoint, plugdet_model())
