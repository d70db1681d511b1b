"""The YOLO plugin's weight converters against the key lists of the peers' own models.

``zoo_keys/*.txt`` hold the state-dict keys and shapes of each peer model, as the peer builds
it (80 classes): MMYOLO 0.6.0's configs of its published checkpoints (built with MMYOLO's
code; MMYOLO cannot be installed next to torch 2.14, so its outputs are not compared), the
ultralytics 8.4 and yolov5 7.0 models (whose outputs ``weights_parity/`` compares in the tox
env ``weights``). A checkpoint of random tensors under those keys must convert into the
state of the converter's config, every file tensor used once, and a file that does not fit
must be refused with every missing, unexpected and mis-shaped key listed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from plugdet_yolo.zoo import tables
from plugdet_yolo.zoo.keymap import FocusStemWeight

from core.api import CheckpointError, ClassRows, PeerCheckpoint
from core.engine.full_config import load_full_config
from core.plugins import get_registries
from core.weights.fitting import fit_to_model
from core.weights.loading import find_converter, weight_converters

ROOT = Path(__file__).resolve().parents[3]
KEYS = Path(__file__).resolve().parent / "zoo_keys"
KEY_FILES = {
    "ultralytics/yolov8n": "ultralytics_yolov8n", "ultralytics/yolov8s": "ultralytics_yolov8s",
    "ultralytics/yolov5nu": "ultralytics_yolov5nu", "ultralytics/yolov5su": "ultralytics_yolov5su",
    "yolov5/yolov5n": "yolov5_yolov5n", "yolov5/yolov5s": "yolov5_yolov5s",
    "mmyolo/yolov5_n": "mmyolo_yolov5_n", "mmyolo/yolov5_s": "mmyolo_yolov5_s",
    "mmyolo/yolov8_n": "mmyolo_yolov8_n", "mmyolo/yolov8_s": "mmyolo_yolov8_s",
    "mmyolo/yolox_tiny": "mmyolo_yolox_tiny", "mmyolo/yolox_s": "mmyolo_yolox_s",
    "mmyolo/rtmdet_tiny": "mmyolo_rtmdet_tiny", "mmyolo/rtmdet_s": "mmyolo_rtmdet_s",
}
BN_PARAMS = ("weight", "bias", "running_mean", "running_var")
#: YOLOv5's COCO anchors (pixels) per level; files keep them in units of the stride.
COCO_ANCHORS = torch.tensor([[[10, 13], [16, 30], [33, 23]], [[30, 61], [62, 45], [59, 119]],
                             [[116, 90], [156, 198], [373, 326]]], dtype=torch.float32)
STRIDES = torch.tensor([8.0, 16.0, 32.0])
CLASSES = tuple(f"class{i}" for i in range(80))
SHARED_COPY = re.compile(r"(bbox_head\.head_module\.(?:cls|reg)_convs\.)[12](\..*\.conv\.weight)")


def yolo_converters() -> dict[str, object]:
    """The registered converters of this plugin, by name."""
    return {name: converter for name, converter in weight_converters()
            if type(converter).__module__.startswith("plugdet_yolo.")}


def key_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """The keys and shapes of ``zoo_keys/<name>.txt`` (``X.[BN] (C,)``: a BatchNorm)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for line in (KEYS / f"{name}.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        key, shape_text = line.split(" ", 1)
        shape = tuple(int(size) for size in re.findall(r"\d+", shape_text))
        if key.endswith(".[BN]"):
            for param in BN_PARAMS:
                shapes[f"{key[:-5]}.{param}"] = shape
            shapes[f"{key[:-5]}.num_batches_tracked"] = ()
        else:
            shapes[key] = shape
    return shapes


def peer_state(converter_name: str) -> dict[str, torch.Tensor]:
    """Random tensors under a peer model's keys; the values a converter checks (DFL bins,
    YOLOv5 anchors, RTMDet's level copies of its shared convs) are the peer's."""
    generator = torch.Generator().manual_seed(0)
    state = {key: torch.randn(shape, generator=generator) if shape
             else torch.tensor(int(torch.randint(100, (), generator=generator)))
             for key, shape in key_shapes(KEY_FILES[converter_name]).items()}
    for key in state:
        if key.endswith(".dfl.conv.weight"):
            state[key] = torch.arange(16, dtype=torch.float32).view(1, 16, 1, 1)
        elif key.endswith(".anchors"):
            state[key] = COCO_ANCHORS / STRIDES[:, None, None]
        elif SHARED_COPY.match(key):
            state[key] = state[SHARED_COPY.sub(r"\g<1>0\2", key)].clone()
    return state


def checkpoint_of(converter_name: str, state: dict[str, torch.Tensor] | None = None
                  ) -> PeerCheckpoint:
    source = yolo_converters()[converter_name].source
    state = peer_state(converter_name) if state is None else state
    return PeerCheckpoint(source, state, CLASSES, "", {}, f"{KEY_FILES[converter_name]}.pt")


def config_model(config: str, **head: object) -> torch.nn.Module:
    cfg = load_full_config(str(ROOT / config))
    cfg["model"]["head"].update(head)
    return get_registries().build("detector", cfg["model"], path="model")


def test_every_converter_of_the_plugin_has_a_key_list():
    assert set(yolo_converters()) == set(KEY_FILES)
    for name, converter in yolo_converters().items():
        assert (ROOT / converter.config).is_file()
        assert converter.licence == ("Apache-2.0" if name.startswith("mmyolo/") else "AGPL-3.0")


@pytest.mark.parametrize("name", sorted(KEY_FILES))
def test_a_peer_file_fills_every_parameter_of_its_config(name):
    converter = yolo_converters()[name]
    checkpoint = checkpoint_of(name)
    model = config_model(converter.config)
    assert find_converter(checkpoint, model)[0] == name  # no other converter takes it
    converted = converter.convert(checkpoint, model)
    model.load_state_dict(converted.state, strict=True)  # every key, every shape
    # every file tensor is used once: converted tensors are the file's, but YOLOX's stem
    file_keys = {tensor.data_ptr(): key for key, tensor in checkpoint.state.items()}
    used = [file_keys[tensor.data_ptr()] for key, tensor in converted.state.items()
            if key not in converter.architecture.keymap.transforms]
    reordered = {"backbone.stem.conv.conv.weight"} if "yolox" in name else set()
    assert len(set(used)) == len(used) == len(converted.state) - len(reordered)
    assert set(checkpoint.state) - set(used) == set(converter.extra_keys(model)) | reordered
    rows = (ClassRows(groups=3, stride=85, offset=5) if "yolov5/" in name or "yolov5_" in name
            else ClassRows())
    assert set(converted.class_rows.values()) == {rows}
    assert len(converted.class_rows) == 6 and set(converted.class_rows) <= set(converted.state)
    assert converted.classes == CLASSES


@pytest.mark.parametrize("name", sorted(KEY_FILES))
def test_a_file_that_does_not_fit_is_refused_with_every_bad_key(name):
    converter = yolo_converters()[name]
    state = peer_state(name)
    keys = sorted(key for key in state if key.endswith(".weight") and state[key].dim() == 4)
    missing, reshaped = keys[3], keys[7]
    del state[missing]
    state[reshaped] = torch.zeros(state[reshaped].shape[0] + 1, *state[reshaped].shape[1:])
    state["model.99.extra.weight"] = torch.zeros(1)
    checkpoint = checkpoint_of(name, state)
    with pytest.raises(CheckpointError) as error:
        converter.convert(checkpoint, config_model(converter.config))
    message = str(error.value)
    assert checkpoint.path in message and name in message
    assert re.search(rf"missing keys \(1\): {re.escape(missing)}\n", message)
    assert re.search(r"unexpected keys \(1\): model\.99\.extra\.weight\n", message)
    assert re.search(rf"shape mismatches \(1\): {re.escape(reshaped)} \(checkpoint", message)


def test_an_s_file_into_an_n_model_lists_the_shapes_that_differ():
    checkpoint = checkpoint_of("ultralytics/yolov8s")
    model = config_model(yolo_converters()["ultralytics/yolov8n"].config)
    name, converter = find_converter(checkpoint, model)
    assert name == "ultralytics/yolov8s"
    with pytest.raises(CheckpointError, match=r"(?s)through ultralytics/yolov8s .*yolov8_s_ultral.*"
                       r"shape mismatches \(\d+\): model\.0\.bn\.bias \(checkpoint \(32,\) vs "
                       r"expected \(16,\)\)"):
        converter.convert(checkpoint, model)


def ultralytics_as_mmyolo(key: str, v8: bool) -> str:
    """An ultralytics / yolov5 key renamed as MMYOLO's converters
    (``tools/model_converters/yolov{5,8}_to_mmyolo.py``) rename it."""
    rows = {"model.0": "backbone.stem", "model.9": "backbone.stage4.2",
            **{f"model.{2 * i + 1 + j}": f"backbone.stage{i + 1}.{j}"
               for i in range(4) for j in range(2)}}
    rows |= ({"model.12": "neck.top_down_layers.0", "model.15": "neck.top_down_layers.1",
              "model.16": "neck.downsample_layers.0", "model.18": "neck.bottom_up_layers.0",
              "model.19": "neck.downsample_layers.1", "model.21": "neck.bottom_up_layers.1",
              "model.22": "bbox_head.head_module"} if v8 else
             {"model.10": "neck.reduce_layers.2", "model.13": "neck.top_down_layers.0.0",
              "model.14": "neck.top_down_layers.0.1", "model.17": "neck.top_down_layers.1",
              "model.18": "neck.downsample_layers.0", "model.20": "neck.bottom_up_layers.0",
              "model.21": "neck.downsample_layers.1", "model.23": "neck.bottom_up_layers.1",
              "model.24.m": "bbox_head.head_module.convs_pred"})
    prefix = next(p for p in sorted(rows, key=len, reverse=True) if key.startswith(p + "."))
    key = rows[prefix] + key[len(prefix):]
    if ".m." in key:
        return key.replace(".m.", ".blocks.").replace(".cv", ".conv")
    if key.startswith("bbox_head."):
        return key.replace(".cv2", ".reg_preds").replace(".cv3", ".cls_preds")
    if key.startswith("backbone.stage4.2."):
        return key.replace(".cv", ".conv")
    return key.replace(".cv1", ".main_conv").replace(".cv2", ".final_conv" if v8 else
                                                       ".short_conv").replace(".cv3", ".final_conv")


@pytest.mark.parametrize(("config", "ultralytics_map", "mmyolo_map", "v8"), [
    ("yolov5_n_300e_coco.toml", tables.YOLOV5, tables.MMYOLO_YOLOV5, False),
    ("yolov5_s_300e_coco.toml", tables.YOLOV5, tables.MMYOLO_YOLOV5, False),
    ("yolov8_n_500e_coco.toml", tables.ULTRALYTICS_YOLOV8, tables.MMYOLO_YOLOV8, True),
    ("yolov8_s_500e_coco.toml", tables.ULTRALYTICS_YOLOV8, tables.MMYOLO_YOLOV8, True),
])
def test_mmyolo_names_are_the_peer_names_as_mmyolo_converts_them(config, ultralytics_map,
                                                                   mmyolo_map, v8):
    """The MMYOLO maps agree with the ultralytics / yolov5 ones (whose outputs the parity
    tests compare) composed with MMYOLO's own conversion of those files."""
    model = config_model(f"plugins/yolo/configs/{config}")
    peer, mmyolo = ultralytics_map.peer_names(model), mmyolo_map.peer_names(model)
    assert {key: ultralytics_as_mmyolo(peer[key], v8) for key in peer} == mmyolo


def test_the_focus_stem_reordered_is_the_6x6_stem_conv():
    """MMDetection's Focus (patches top-left, bottom-left, top-right, bottom-right, then a
    3x3 conv) equals plugdet's stride-2 6x6 conv (padding 2) with the reordered weight."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(24, 12, 3, 3, generator=generator)
    image = torch.randn(2, 3, 64, 96, generator=generator)
    patches = torch.cat([image[..., ::2, ::2], image[..., 1::2, ::2], image[..., ::2, 1::2],
                         image[..., 1::2, 1::2]], dim=1)
    focus = F.conv2d(patches, weight, padding=1)
    stem = F.conv2d(image, FocusStemWeight()(weight), stride=2, padding=2)
    assert FocusStemWeight().peer_shape((24, 3, 6, 6)) == (24, 12, 3, 3)
    torch.testing.assert_close(stem, focus, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("name", "config", "head"), [
    ("yolov5/yolov5n", "plugins/yolo/configs/yolov5_n_finetune_raccoon.toml", {}),
    ("ultralytics/yolov8n", "plugins/yolo/configs/yolov8_n_finetune_raccoon.toml", {}),
    ("mmyolo/rtmdet_tiny", "plugins/yolo/configs/rtmdet_tiny_300e_coco.toml",
     {"num_classes": 2}),
])
def test_a_file_of_other_classes_keeps_the_rows_of_shared_names(name, config, head):
    """The class-count-dependent shapes are left to the fitting, which keeps each shared
    class's rows (per anchor for YOLOv5, with the box and objectness rows) bit for bit."""
    converter = yolo_converters()[name]
    checkpoint = checkpoint_of(name)
    model = config_model(config, **head)
    dataset = ("class7", "raccoon")[:model.head.num_classes]
    before = {key: value.clone() for key, value in model.state_dict().items()}
    converted = converter.convert(checkpoint, model)
    report = fit_to_model(converted, model, dataset, None, checkpoint.path, name)
    assert report.kept == (("class7", "class7"),)
    state = model.state_dict()
    for key, rows in converted.class_rows.items():
        theirs, ours = converted.state[key], state[key]
        stride_in, stride_out = rows.stride or 80, ours.shape[0] // rows.groups
        for group in range(rows.groups):
            start_in, start_out = group * stride_in, group * stride_out
            assert torch.equal(ours[start_out:start_out + rows.offset],
                               theirs[start_in:start_in + rows.offset])
            assert torch.equal(ours[start_out + rows.offset],
                               theirs[start_in + rows.offset + 7])
            if len(dataset) > 1:
                assert torch.equal(ours[start_out + rows.offset + 1],
                                   before[key][start_out + rows.offset + 1])


def test_yolov5_anchors_other_than_the_configs_are_refused():
    state = peer_state("yolov5/yolov5n")
    state["model.24.anchors"] = state["model.24.anchors"] * 1.5
    converter = yolo_converters()["yolov5/yolov5n"]
    with pytest.raises(CheckpointError, match=r"prior_generator\.base_sizes"):
        converter.convert(checkpoint_of("yolov5/yolov5n", state),
                          config_model(converter.config))


def test_dfl_bins_other_than_the_integers_are_refused():
    state = peer_state("ultralytics/yolov8n")
    state["model.22.dfl.conv.weight"] = state["model.22.dfl.conv.weight"] * 0.5
    converter = yolo_converters()["ultralytics/yolov8n"]
    with pytest.raises(CheckpointError, match="DFL bins"):
        converter.convert(checkpoint_of("ultralytics/yolov8n", state),
                          config_model(converter.config))


def test_rtmdet_levels_must_share_their_convs():
    state = peer_state("mmyolo/rtmdet_tiny")
    key = "bbox_head.head_module.reg_convs.2.1.conv.weight"
    state[key] = state[key] + 1.0
    converter = yolo_converters()["mmyolo/rtmdet_tiny"]
    with pytest.raises(CheckpointError, match=rf"{re.escape(key)} differs .*share_conv = false"):
        converter.convert(checkpoint_of("mmyolo/rtmdet_tiny", state),
                          config_model(converter.config))


def test_rtmdet_without_shared_convs_takes_every_level():
    converter = yolo_converters()["mmyolo/rtmdet_tiny"]
    state = peer_state("mmyolo/rtmdet_tiny")
    model = config_model(converter.config, share_conv=False)
    converted = converter.convert(checkpoint_of("mmyolo/rtmdet_tiny", state), model)
    model.load_state_dict(converted.state, strict=True)
    assert converted.state["head.cls_convs.2.1.weight"] is state[
        "bbox_head.head_module.cls_convs.2.1.conv.weight"]


def test_older_mmyolo_prior_buffers_are_dropped():
    state = peer_state("mmyolo/yolov5_n")
    state["bbox_head.prior_generator.priors_base_sizes"] = torch.zeros(3, 3, 2)
    state["bbox_head.grid_offset"] = torch.zeros(5, 2)
    converter = yolo_converters()["mmyolo/yolov5_n"]
    model = config_model(converter.config)
    model.load_state_dict(converter.convert(checkpoint_of("mmyolo/yolov5_n", state),
                                            model).state)
