"""Pickled model files are read without running anything they name: a pickle that would call
a function is refused in one line before anything happens; an ultralytics / YOLOv5 model
object gives the state dict its own ``state_dict()`` gives."""

from __future__ import annotations

import io
import pickle
import re
import sys
import zipfile

import numpy as np
import pytest
import torch
from peer_files import DetectionModel, harmful_objects, modules_named, save_pickled_model

from core.errors import CheckpointError
from core.weights.checkpoint import read_checkpoint
from core.weights.safe_pickle import load_restricted

#: torch.save's note, in the legacy format, that a pickled module class's source is unknown
pytestmark = pytest.mark.filterwarnings("ignore:Couldn't retrieve source code")

YAML_V8 = {"nc": 2, "scale": "n", "yaml_file": "yolov8n.yaml",
           "backbone": [[-1, 1, "Conv", [64, 3, 2]]], "head": [[-1, 1, "Detect", ["nc"]]]}
YAML_V5 = {"nc": 2, "depth_multiple": 0.33, "width_multiple": 0.25,
           "anchors": [[10, 13, 16, 30, 33, 23]], "backbone": [], "head": []}


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("layout", ["ultralytics", "mmdet"])
def test_a_pickle_that_would_run_code_is_refused_in_one_line(tmp_path, legacy, layout):
    marker = tmp_path / "created"
    for name, harmful in harmful_objects(marker).items():
        path = tmp_path / f"{name}.pt"
        if layout == "ultralytics":
            contents = {"model": harmful, "date": "2026-01-01"}
        else:
            contents = {"meta": {"mmdet_version": "3.3.0", "seed": harmful},
                        "state_dict": {"backbone.conv.weight": torch.ones(2)}}
        torch.save(contents, path, _use_new_zipfile_serialization=not legacy)
        with pytest.raises(CheckpointError) as info:
            read_checkpoint(path)
        message = str(info.value)
        assert message.splitlines() == [message]
        assert message.startswith(f"refusing to load {path}: its pickle calls {name} ")
        assert not marker.exists()


def test_a_pickle_setting_the_state_of_a_real_object_is_refused(tmp_path):
    path = tmp_path / "build.pt"
    body = b"\x80\x02]q\x00}q\x01b."  # PROTO 2, EMPTY_LIST, EMPTY_DICT, BUILD, STOP
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("build/data.pkl", body)
    with pytest.raises(CheckpointError, match="its pickle sets the state of a list"):
        load_restricted(path)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_an_ultralytics_model_gives_its_own_state_dict_in_float32(tmp_path, legacy):
    path = tmp_path / "yolov8n.pt"
    names = {0: "person", 1: "dog"}
    model = save_pickled_model(path, "ultralytics.nn.tasks", YAML_V8, names, legacy=legacy)
    assert "ultralytics" not in sys.modules  # the reader has nothing to import
    checkpoint = read_checkpoint(path)
    expected = model.float().state_dict()
    assert checkpoint.source == "ultralytics"
    assert checkpoint.architecture == "yolov8n.yaml"
    assert checkpoint.classes == ("person", "dog")
    assert list(checkpoint.state) == list(expected)
    assert "model.2.grid_cache" not in checkpoint.state  # a non-persistent buffer
    for key, value in expected.items():
        assert checkpoint.state[key].dtype == value.dtype, key
        assert torch.equal(checkpoint.state[key], value), key
    assert checkpoint.state["model.0.conv.weight"].dtype == torch.float32
    assert checkpoint.meta["model_class"] == "ultralytics.nn.tasks.DetectionModel"
    assert checkpoint.meta["yaml"] == YAML_V8
    assert checkpoint.meta["train_args"] == {"imgsz": 640, "epochs": 3}
    assert checkpoint.meta["stride"] == [8.0, 16.0, 32.0]


def test_a_yolov5_release_model_is_told_by_its_module_path(tmp_path):
    path = tmp_path / "yolov5n.pt"
    save_pickled_model(path, "models.yolo", YAML_V5, ["person", "dog"],
                       yaml_file="yolov5n.yaml")
    checkpoint = read_checkpoint(path)
    assert (checkpoint.source, checkpoint.architecture) == ("yolov5", "yolov5n.yaml")
    assert checkpoint.classes == ("person", "dog")
    assert "model.2.anchors" in checkpoint.state
    without_name = tmp_path / "unnamed.pt"
    save_pickled_model(without_name, "models.yolo", YAML_V5, ["a", "b"])
    assert read_checkpoint(without_name).architecture == "yolov5"  # anchors in its yaml


def test_a_pickled_model_of_another_framework_is_named_not_read(tmp_path):
    path = tmp_path / "other.pt"
    save_pickled_model(path, "mmdet.models", YAML_V8, ["a", "b"])
    with pytest.raises(CheckpointError, match=re.escape(
            "holds a pickled mmdet.models.DetectionModel, not an ultralytics or YOLOv5 "
            "detection model")):
        read_checkpoint(path)


class ConfigDict(dict):
    """What MMEngine keeps a config in (a dict subclass)."""


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_mmdet_meta_with_numpy_scalars_and_a_config_dict_keeps_plain_values(tmp_path, legacy):
    path = tmp_path / "retinanet.pth"
    state = {"backbone.conv1.weight": torch.randn(4, 3, 3, 3),
             "bbox_head.retina_cls.weight": torch.randn(6, 4, 3, 3)}
    cfg = ConfigDict(model={"type": "ATSS", "num_classes": 2})
    meta = {"mmengine_version": "0.10.7", "seed": np.int64(7), "lr": np.float32(0.5),
            "dataset_meta": {"classes": ("cat", "dog"), "palette": [(1, 2, 3), (4, 5, 6)]},
            "cfg": cfg, "iou_thr": np.float64(0.25)}
    with modules_named("mmengine.config.config", ConfigDict=ConfigDict):
        torch.save({"meta": meta, "state_dict": state}, path,
                   _use_new_zipfile_serialization=not legacy)
    with pytest.raises(pickle.UnpicklingError):  # what the restricted reader is there for
        torch.load(path, weights_only=True)
    checkpoint = read_checkpoint(path)
    assert (checkpoint.source, checkpoint.architecture) == ("mmdet", "ATSS")
    assert checkpoint.classes == ("cat", "dog")
    assert checkpoint.meta["seed"] == 7 and checkpoint.meta["lr"] == 0.5
    assert checkpoint.meta["iou_thr"] == 0.25
    assert checkpoint.meta["cfg"] == {"model": {"type": "ATSS", "num_classes": 2}}
    assert all(torch.equal(checkpoint.state[key], value) for key, value in state.items())


def test_a_truncated_file_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "cut.pt"
    buffer = io.BytesIO()
    torch.save({"model": DetectionModel(YAML_V8, ["a"]).half()}, buffer)
    path.write_bytes(buffer.getvalue()[:2000])
    with pytest.raises(CheckpointError, match=f"cannot read checkpoint {path}"):
        read_checkpoint(path)


def test_reading_never_loads_with_weights_only_false(tmp_path, monkeypatch):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    path = tmp_path / "yolov8n.pt"
    save_pickled_model(path, "ultralytics.nn.tasks", YAML_V8, {0: "a"})
    read_checkpoint(path)
    torch.save({"state_dict": {"w": torch.ones(1)}}, tmp_path / "plain.pth")
    read_checkpoint(tmp_path / "plain.pth")
    assert calls == [True, True]
