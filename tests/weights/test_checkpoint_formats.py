"""``read_checkpoint`` tells each framework's files apart, and ``require_keys`` lists every
key that does not fit in one message."""

from __future__ import annotations

import re
from urllib.error import URLError

import pytest
import torch
import torchvision

from core.errors import CheckpointError
from core.weights.checkpoint import PeerCheckpoint, read_checkpoint, require_keys
from core.weights.safetensors_files import safetensors_bytes

#: Keys telling torchvision's detection models apart (shapes do not matter to the reader).
TORCHVISION_KEYS = {
    "retinanet_resnet50_fpn": ["backbone.body.conv1.weight",
                               "head.classification_head.conv.0.0.weight",
                               "head.classification_head.cls_logits.weight"],
    "retinanet_resnet50_fpn_v2": ["backbone.body.conv1.weight",
                                  "head.classification_head.conv.0.0.weight",
                                  "head.classification_head.conv.0.1.weight",
                                  "head.classification_head.cls_logits.weight"],
    "fasterrcnn_resnet50_fpn": ["backbone.body.conv1.weight", "roi_heads.box_head.fc6.weight",
                                "roi_heads.box_predictor.cls_score.weight"],
    "fasterrcnn_resnet50_fpn_v2": ["backbone.body.conv1.weight",
                                   "roi_heads.box_head.5.weight",
                                   "roi_heads.box_predictor.cls_score.weight"],
    "maskrcnn_resnet50_fpn": ["backbone.body.conv1.weight", "roi_heads.box_head.fc6.weight",
                              "roi_heads.box_predictor.cls_score.weight",
                              "roi_heads.mask_predictor.mask_fcn_logits.weight"],
}


def _state(keys):
    return {key: torch.full((2,), float(index)) for index, key in enumerate(keys)}


def test_plugdet_checkpoints_bare_state_dicts_and_training_files(tmp_path):
    state = {"backbone.stem.weight": torch.ones(2, 2), "head.bias": torch.zeros(3)}
    torch.save({"meta": {"plugdet_version": "0.2.0", "epoch": 3}, "state_dict": state},
               tmp_path / "epoch_3.pth")
    torch.save(state, tmp_path / "bare.pth")
    for name in ("epoch_3.pth", "bare.pth"):
        checkpoint = read_checkpoint(tmp_path / name)
        assert (checkpoint.source, checkpoint.classes, checkpoint.architecture) == \
            ("plugdet", None, "")
        assert list(checkpoint.state) == list(state)
    assert read_checkpoint(tmp_path / "epoch_3.pth").meta["epoch"] == 3


@pytest.mark.parametrize("architecture", list(TORCHVISION_KEYS))
def test_torchvision_state_dicts_name_their_architecture(tmp_path, architecture):
    path = tmp_path / f"{architecture}_finetuned.pth"
    torch.save(_state(TORCHVISION_KEYS[architecture]), path)
    checkpoint = read_checkpoint(path)
    assert (checkpoint.source, checkpoint.architecture) == ("torchvision", architecture)
    assert checkpoint.classes is None  # a file of unknown origin names no classes


def test_a_torchvision_release_file_has_the_coco_classes_in_row_order(tmp_path):
    url = torchvision.models.get_model_weights("retinanet_resnet50_fpn").DEFAULT.url
    path = tmp_path / url.rsplit("/", 1)[1]
    torch.save(_state(TORCHVISION_KEYS["retinanet_resnet50_fpn"]), path)
    classes = read_checkpoint(path).classes
    assert len(classes) == 90 and classes[:3] == ("person", "bicycle", "car")
    assert classes[11] == "N/A"  # COCO's unused id 12 keeps its row


#: ``cfg.pretty_text`` of MMEngine writes a dict's keys in any order (``type`` often last).
MM_CONFIGS = {
    "type first": "model = dict(\n    type='ATSS',\n    backbone=dict(type='ResNet', depth=50))",
    "type last": ("default_scope = 'mmdet'\nmodel = dict(\n    backbone=dict(\n"
                  "        depth=50, init_cfg=dict(checkpoint='torchvision://resnet50', "
                  "type='Pretrained'),\n        type='ResNet'),\n"
                  "    bbox_head=dict(num_classes=80, type='ATSSHead'),\n"
                  "    test_cfg=dict(nms=dict(iou_threshold=0.6, type='nms')),\n"
                  "    type='ATSS')\noptim_wrapper = dict(type='OptimWrapper')"),
    "no model type": "model = dict(backbone=dict(type='ResNet'))\nrunner = dict(type='Runner')",
}


@pytest.mark.parametrize("order", list(MM_CONFIGS))
def test_an_mmdet_file_names_the_model_type_of_its_config_text(tmp_path, order):
    torch.save({"meta": {"mmdet_version": "3.3.0", "cfg": MM_CONFIGS[order]},
                "state_dict": _state(["backbone.conv1.weight", "bbox_head.atss_cls.weight"])},
               tmp_path / "atss.pth")
    checkpoint = read_checkpoint(tmp_path / "atss.pth")
    assert (checkpoint.source, checkpoint.architecture) == \
        ("mmdet", "" if order == "no model type" else "ATSS")


def test_torchvision_uri_downloads_through_the_hub_with_weights_only(monkeypatch):
    calls = []

    def fake_download(url, **kwargs):
        calls.append((url, kwargs))
        return _state(TORCHVISION_KEYS["fasterrcnn_resnet50_fpn_v2"])

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    checkpoint = read_checkpoint("torchvision://fasterrcnn_resnet50_fpn_v2")
    assert calls[0][0].endswith("fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth")
    assert calls[0][1]["weights_only"] is True
    assert (checkpoint.source, checkpoint.architecture) == ("torchvision",
                                                            "fasterrcnn_resnet50_fpn_v2")
    assert checkpoint.classes[0] == "person" and "__background__" not in checkpoint.classes
    assert checkpoint.path == "torchvision://fasterrcnn_resnet50_fpn_v2"


def test_torchvision_uri_offline_says_where_to_download(monkeypatch):
    def offline(url, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint("torchvision://retinanet_resnet50_fpn")
    message = str(info.value)
    assert "https://download.pytorch.org/models/retinanet_resnet50_fpn_coco-eeacb38b.pth" \
        in message
    assert "download the file elsewhere and give its local path in load_from" in message
    with pytest.raises(CheckpointError, match="resnet50: not a torchvision detection model"):
        read_checkpoint("torchvision://resnet50")


def test_safetensors_files_keep_plugdet_metadata(tmp_path):
    state = {"head.weight": torch.randn(3, 2), "head.bias": torch.randn(3)}
    meta = {"plugdet_version": "0.2.0", "classes": ["a", "b", "c"],
            "converted_from": {"source": "ultralytics", "architecture": "yolov8n.yaml"}}
    (tmp_path / "plugdet.safetensors").write_bytes(safetensors_bytes(state, meta))
    checkpoint = read_checkpoint(tmp_path / "plugdet.safetensors")
    assert (checkpoint.source, checkpoint.classes, checkpoint.architecture) == \
        ("plugdet", ("a", "b", "c"), "yolov8n.yaml")
    assert checkpoint.meta["converted_from"]["source"] == "ultralytics"
    assert all(torch.equal(checkpoint.state[key], value) for key, value in state.items())

    from safetensors.torch import save_file

    save_file(state, str(tmp_path / "other.safetensors"), metadata={"format": "pt"})
    other = read_checkpoint(tmp_path / "other.safetensors")
    assert (other.source, other.classes, other.meta) == ("safetensors", None, {"format": "pt"})
    (tmp_path / "bad.safetensors").write_bytes(b"not a header")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_checkpoint(tmp_path / "bad.safetensors")


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    missing = re.escape(f"checkpoint file not found: {tmp_path}/x.pth")
    with pytest.raises(CheckpointError, match=missing):
        read_checkpoint(tmp_path / "x.pth")
    (tmp_path / "junk.pth").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=re.escape(str(tmp_path / "junk.pth"))):
        read_checkpoint(tmp_path / "junk.pth")
    torch.save([torch.ones(1)], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="holds a list, not a dict"):
        read_checkpoint(tmp_path / "list.pth")


def test_require_keys_lists_missing_unexpected_and_mis_shaped_keys_in_one_message():
    checkpoint = PeerCheckpoint("torchvision", {"a": torch.ones(2, 3), "b": torch.ones(4),
                                                "extra": torch.ones(1), "skip.me": torch.ones(1)},
                                None, "retinanet_resnet50_fpn", {}, "/w/tv.pth")
    require_keys(checkpoint, {"a": (2, -1), "b": (4,), "extra": (1,)}, ignore=("skip.",))
    require_keys(checkpoint, {"a", "b", "extra", "skip.me"})
    with pytest.raises(CheckpointError) as info:
        require_keys(checkpoint, {"a": (2, 4), "b": (4,), "c": (1,)}, ignore=("skip.",),
                     what="torchvision/retinanet_resnet50_fpn")
    assert str(info.value) == (
        "checkpoint /w/tv.pth (torchvision retinanet_resnet50_fpn) does not fit "
        "torchvision/retinanet_resnet50_fpn:\n"
        "  missing keys (1): c\n"
        "  unexpected keys (1): extra\n"
        "  shape mismatches (1): a (checkpoint (2, 3) vs expected (2, 4))")
