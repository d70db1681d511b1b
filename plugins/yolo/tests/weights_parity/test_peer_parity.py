"""Checkpoints written by ultralytics and by ultralytics/yolov5 give, converted, the peers' own
outputs and detections.

ultralytics and yolov5 (AGPL-3.0) are never plugdet dependencies: they are installed only in
the tox env ``weights`` (``tox -e weights``), and this module is skipped elsewhere. The key
maps themselves are tested everywhere by ``plugins/yolo/tests/test_zoo_keys.py``.

For each architecture the peer builds its model from its yaml (its own random
initialisation), which is made informative on both sides at once: He-normal conv weights,
random BatchNorm scales and shifts, BatchNorm statistics measured on random images, the class
predictors' weights halved and their biases low but for five classes (a hundred to ten
thousand (prior, class) pairs above the score threshold, so that NMS has work), then saved
in the peer's own checkpoint format (ultralytics: ``YOLO.save``, the model pickled in half
precision; yolov5: the release files' layout ``{"model": DetectionModel.half(), "epoch": -1,
...}``). plugdet reads the file with
``read_checkpoint`` (none of its code runs), picks the registered converter and loads the
converted state strictly into the model of the converter's config; the peer loads the same
file with its own loader. On one 640 x 640 random image, in eval mode, float32, unfused:

- raw head outputs (the logits of every prior) agree within 1e-4;
- the peer's pre-NMS tensor (decoded boxes and scores) and plugdet's decoded boxes and scores:
  scores within 1e-4, boxes within 1e-3 px (coordinates reach ~900 px, where float32 steps
  are 6e-5 px, and the two decodings order their operations differently);
- detections after each side's post-processing: the same number and labels, boxes within
  1e-3 px, scores within 1e-4.

How the peers' ``non_max_suppression`` (validation settings) and plugdet's ``MultiClassNMS``
differ, and why the results agree here:

- candidates: the peers keep the (prior, class) pairs scoring above ``conf`` (yolov5 first
  drops priors whose objectness is not above it, which a pair's score ``cls * obj`` implies),
  at most ``max_nms = 30000`` of them by score over all levels; plugdet keeps the
  ``nms_pre = 30000`` best pairs above ``score_thr`` per level. Equal while fewer than 30000
  pairs pass (checked).
- class-wise NMS: the peers shift the boxes by ``class * 7680`` px and run one torchvision
  ``nms``; plugdet runs torchvision's ``batched_nms`` keyed by image and class. The same
  suppression for boxes within 7680 px, up to rounding of an IoU equal to the threshold.
- clipping: the peers run NMS on the unclipped boxes and clip to the original image
  afterwards; plugdet's coders clip to the input before NMS unless ``clip_border = false``,
  which the pretrained configs set (the detector clips to the original image afterwards).
- the peers stop NMS after a time limit (with a warning); plugdet has none.
"""

from __future__ import annotations

import copy
import inspect
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

REASON = ("ultralytics and yolov5 (AGPL-3.0) are installed only in the tox env 'weights': "
          "run these parity tests with `tox -e weights`")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("YOLO_VERBOSE", "0")
os.environ.setdefault("YOLO_CONFIG_DIR",
                      os.path.join(tempfile.gettempdir(), "plugdet-ultralytics-config"))
ultralytics = pytest.importorskip("ultralytics", reason=REASON)

from ultralytics import YOLO  # noqa: E402
from ultralytics.utils import nms as ultralytics_nms  # noqa: E402
from ultralytics.utils import ops as ultralytics_ops  # noqa: E402

from core.api import (  # noqa: E402
    DetBatch,
    DetSample,
    flatten_levels,
    read_checkpoint,
)
from core.engine.full_config import load_full_config  # noqa: E402
from core.plugins import get_registries  # noqa: E402
from core.weights.loading import find_converter, weight_converters  # noqa: E402

ROOT = Path(__file__).resolve().parents[4]
SIZE = 640
CALIBRATION_SIZE = 320
#: Class logits: weights scaled, every bias this low but the first classes' (RAISED_CLASSES).
LOW_CLASS_BIAS = -12.0
RAISED_CLASSES = torch.tensor([-8.0, -8.5, -9.0, -9.5, -10.0])
CLASS_WEIGHT_SCALE = 0.5
VAL_CONF = 0.001  # both peers' validation score threshold
RAW_TOL, SCORE_TOL, BOX_TOL = 1e-4, 1e-4, 1e-3


def make_informative_(model: nn.Module, generator: torch.Generator,
                      forward: Callable[[Tensor], Any]) -> None:
    """He-normal weights for every trainable conv (ultralytics' fixed DFL conv keeps its
    bins), random BatchNorm scales and shifts, BatchNorm statistics of two random batches."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d) and module.weight.requires_grad:
                module.weight.normal_(0.0, (2.0 / module.weight[0].numel()) ** 0.5,
                                      generator=generator)
                if module.bias is not None:
                    module.bias.normal_(0.0, 0.5, generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0.0, 0.1, generator=generator)
                module.reset_running_stats()
                module.momentum = None  # cumulative average of the batches below
        model.train()
        for _ in range(2):
            forward(torch.rand(2, 3, CALIBRATION_SIZE, CALIBRATION_SIZE, generator=generator))
        model.eval()


def set_class_rows_(weight: Tensor, bias: Tensor) -> None:
    """The class rows of one predictor, ``weight (..., C, in)`` and ``bias (..., C)``: weights
    halved (logits spread less), biases low except for the first classes."""
    weight.mul_(CLASS_WEIGHT_SCALE)
    bias.fill_(LOW_CLASS_BIAS)
    bias[..., :len(RAISED_CLASSES)] = RAISED_CLASSES


def plugdet_model(path: Path, expected_converter: str) -> tuple[nn.Module, dict[str, Any]]:
    """plugdet's model of the converter's config with the file's weights, and the config."""
    checkpoint = read_checkpoint(path)
    config_path = dict(weight_converters())[expected_converter].config
    config = load_full_config(str(ROOT / config_path))
    model = get_registries().build("detector", config["model"], path="model")
    name, converter = find_converter(checkpoint, model)
    assert name == expected_converter
    model.load_state_dict(converter.convert(checkpoint, model).state, strict=True)
    return model.eval(), config


def xywh_to_xyxy(boxes: Tensor) -> Tensor:
    return torch.cat([boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2],
                     dim=-1)


def max_diff(a: Tensor, b: Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max()) if a.numel() else 0.0


def plugdet_detections(model: nn.Module, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """plugdet's detections (boxes, scores, labels) of an image that is its own original."""
    sample = DetSample(ori_shape=(SIZE, SIZE), img_shape=(SIZE, SIZE), pad_shape=(SIZE, SIZE))
    result = model.predict(DetBatch(image, [sample]))[0]
    return result.boxes, result.scores, result.labels


def compare_detections(peer: Tensor, ours: tuple[Tensor, Tensor, Tensor]) -> dict[str, float]:
    """``peer``: ``(n, 6)`` rows ``x1, y1, x2, y2, score, class``."""
    peer = peer[torch.argsort(peer[:, 4], descending=True, stable=True)]
    boxes, scores, labels = ours
    assert len(peer) == len(boxes) > 0
    assert torch.equal(peer[:, 5].long(), labels)
    return {"detections": len(boxes), "det_box": max_diff(peer[:, :4], boxes),
            "det_score": max_diff(peer[:, 4], scores)}


def check(diffs: dict[str, float], name: str) -> None:
    print(f"{name}: " + ", ".join(f"{k} {v:.3g}" for k, v in diffs.items()))
    assert diffs["raw"] <= RAW_TOL
    assert diffs["score"] <= SCORE_TOL and diffs["det_score"] <= SCORE_TOL
    assert diffs["box"] <= BOX_TOL and diffs["det_box"] <= BOX_TOL


# ---- ultralytics: YOLOv8 and YOLOv5u -----------------------------------------------------

@pytest.mark.parametrize(("yaml", "converter"), [
    ("yolov8n.yaml", "ultralytics/yolov8n"),
    ("yolov8s.yaml", "ultralytics/yolov8s"),
    ("yolov5nu.yaml", "ultralytics/yolov5nu"),
    ("yolov5su.yaml", "ultralytics/yolov5su"),
])
def test_ultralytics_file_gives_ultralytics_detections(yaml, converter, tmp_path):
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    built = YOLO(yaml)
    make_informative_(built.model, generator, built.model)
    with torch.no_grad():
        for branch in built.model.model[-1].cv3:
            set_class_rows_(branch[-1].weight, branch[-1].bias)
    path = tmp_path / yaml.replace(".yaml", ".pt")
    built.save(path)

    peer = YOLO(path).model.float().eval()  # ultralytics' own loader
    model, config = plugdet_model(path, converter)
    image = torch.rand(1, 3, SIZE, SIZE, generator=generator)
    with torch.no_grad():
        decoded, raw = peer(image)
        feats = model.extract_feat(image)
        cls, distances, bins = model.head(feats)
    num_classes = model.head.num_classes
    ours_raw = torch.cat([flatten_levels(bins, 4 * model.head.reg_max),
                          flatten_levels(cls, num_classes)], dim=-1)
    peer_raw = torch.cat([raw["boxes"], raw["scores"]], dim=1).transpose(1, 2)
    boxes = model.head.decode(model.head.priors_of(cls), flatten_levels(distances, 4))
    scores = flatten_levels(cls, num_classes).sigmoid()
    decoded = decoded.transpose(1, 2)  # (B, N, 4 + C): xywh, class probabilities
    diffs = {"raw": max_diff(ours_raw, peer_raw),
             "box": max_diff(boxes, xywh_to_xyxy(decoded[..., :4])),
             "score": max_diff(scores, decoded[..., 4:]),
             "candidates": int((scores > VAL_CONF).sum())}

    args = ultralytics.cfg.get_cfg()  # validation: conf 0.001, iou 0.7, max_det 300
    postprocess = config["model"]["head"]["postprocess"]
    assert (postprocess["score_thr"], postprocess["iou_threshold"],
            postprocess["max_per_img"]) == (VAL_CONF, args.iou, args.max_det)
    assert diffs["candidates"] < postprocess["nms_pre"]
    peer_dets = ultralytics_nms.non_max_suppression(
        decoded.transpose(1, 2), VAL_CONF, args.iou, multi_label=True, max_det=args.max_det)[0]
    peer_dets[:, :4] = ultralytics_ops.scale_boxes((SIZE, SIZE), peer_dets[:, :4], (SIZE, SIZE))
    with torch.no_grad():
        diffs |= compare_detections(peer_dets, plugdet_detections(model, image))
    check(diffs, converter)


# ---- ultralytics/yolov5: the anchor-based release files ----------------------------------

@pytest.fixture(scope="module")
def yolov5_code():
    """The yolov5 package's modules under the names its release files pickle
    (``models.yolo``; importing ``yolov5.models.yolo`` puts its directory on ``sys.path``)."""
    pytest.importorskip("yolov5", reason=REASON)
    import yolov5.models.yolo
    import yolov5.val
    from models.experimental import attempt_load
    from models.yolo import DetectionModel
    from utils.general import non_max_suppression, scale_boxes
    return {"root": Path(yolov5.__file__).parent, "model": DetectionModel, "load": attempt_load,
            "nms": non_max_suppression, "scale_boxes": scale_boxes,
            "val": inspect.signature(yolov5.val.run).parameters}


@pytest.mark.parametrize(("yaml", "converter"), [
    ("yolov5n.yaml", "yolov5/yolov5n"),
    ("yolov5s.yaml", "yolov5/yolov5s"),
])
def test_yolov5_release_file_gives_yolov5_detections(yaml, converter, yolov5_code, tmp_path,
                                                     monkeypatch):
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    built = yolov5_code["model"](str(yolov5_code["root"] / "models" / yaml))
    make_informative_(built, generator, built)
    detect = built.model[-1]
    with torch.no_grad():
        for conv in detect.m:
            weight = conv.weight.view(detect.na, detect.no, -1)
            bias = conv.bias.view(detect.na, detect.no)
            bias[:, 4] = 0.0  # objectness 0.5
            set_class_rows_(weight[:, 5:], bias[:, 5:])
    path = tmp_path / yaml.replace(".yaml", ".pt")
    torch.save({"epoch": -1, "best_fitness": None, "model": copy.deepcopy(built).half(),
                "ema": None, "updates": None, "optimizer": None, "opt": {}, "date": None}, path)

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # yolov5's torch.load
    peer = yolov5_code["load"](str(path), device="cpu", fuse=False)  # yolov5's own loader
    model, config = plugdet_model(path, converter)
    image = torch.rand(1, 3, SIZE, SIZE, generator=generator)
    with torch.no_grad():
        decoded, raw = peer(image)
        cls, bbox, obj = model.head(model.extract_feat(image))
    anchors, num_classes = detect.na, model.head.num_classes
    ours_raw, peer_decoded = [], []
    for level in range(len(raw)):  # the peer's raw levels: (B, A, H, W, 5 + C)
        batch, _, height, width = cls[level].shape
        ours_raw.append(torch.cat([
            bbox[level].view(batch, anchors, 4, height, width),
            obj[level].view(batch, anchors, 1, height, width),
            cls[level].view(batch, anchors, num_classes, height, width)], dim=2
        ).permute(0, 1, 3, 4, 2))
    start = 0
    for peer_level in raw:  # the peer's decoded rows of a level, in plugdet's prior order
        batch, _, height, width, outputs = peer_level.shape
        rows = decoded[:, start:start + anchors * height * width]
        peer_decoded.append(rows.view(batch, anchors, height, width, outputs)
                            .permute(0, 2, 3, 1, 4).reshape(batch, -1, outputs))
        start += anchors * height * width
    peer_rows = torch.cat(peer_decoded, dim=1)  # xywh, objectness, class probabilities
    boxes = model.head.decode(model.head.priors_of(cls), flatten_levels(bbox, 4))
    scores = (flatten_levels(cls, num_classes).sigmoid()
              * flatten_levels(obj, 1).sigmoid())
    diffs = {"raw": max(max_diff(o, p) for o, p in zip(ours_raw, raw, strict=True)),
             "box": max_diff(boxes, xywh_to_xyxy(peer_rows[..., :4])),
             "score": max_diff(scores, peer_rows[..., 5:] * peer_rows[..., 4:5]),
             "candidates": int((scores > VAL_CONF).sum())}

    val = yolov5_code["val"]  # yolov5's val.py: conf 0.001, iou 0.6, max_det 300
    conf, iou, max_det = (val[k].default for k in ("conf_thres", "iou_thres", "max_det"))
    postprocess = config["model"]["head"]["postprocess"]
    assert (postprocess["score_thr"], postprocess["iou_threshold"],
            postprocess["max_per_img"]) == (conf, iou, max_det)
    assert diffs["candidates"] < postprocess["nms_pre"]
    peer_dets = yolov5_code["nms"](decoded, conf, iou, multi_label=True, max_det=max_det)[0]
    peer_dets[:, :4] = yolov5_code["scale_boxes"]((SIZE, SIZE), peer_dets[:, :4], (SIZE, SIZE))
    with torch.no_grad():
        diffs |= compare_detections(peer_dets, plugdet_detections(model, image))
    check(diffs, converter)
