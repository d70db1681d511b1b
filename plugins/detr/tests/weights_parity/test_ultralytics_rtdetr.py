"""plugdet's RT-DETR hybrid encoder and decoder against ultralytics' ``rtdetr-resnet50.yaml``
(``RTDETRDetectionModel``) with the same weights on the same backbone features.

ultralytics (AGPL-3.0) is never a plugdet dependency: it is installed only in the tox env
``weights`` (``tox -e weights``), and this module is skipped elsewhere. The key map itself
(``plugdet_detr.zoo.ultralytics_rtdetr_table``) is checked everywhere by
``plugins/detr/tests/test_zoo.py``.

ultralytics' layers 5-22 are RT-DETR's hybrid encoder and layer 23 its decoder; its backbone
(layers 0-4) is a plain ResNet-50, which plugdet's ResNet-vd is not, so it is left out: the
backbone levels S3 / S4 / S5 that ultralytics computes (layers 2-4) go into both encoders.
ultralytics builds its model with its own random initialisation, which is then made
informative: random conv, linear, norm and embedding weights (the decoder's zero-initialised
box deltas included), BatchNorm statistics measured on random images, and BatchNorm eps set to
plugdet's 1e-5 (ultralytics' ``initialize_weights`` sets 1e-3; eps is not part of a state
dict, so a converted ultralytics file runs with plugdet's 1e-5). plugdet's
``rtdetr_r50vd_6x_coco`` model takes the converted encoder and decoder tensors
(``ultralytics_rtdetr_state``); then, on two 320 x 320 random images, float32:

- the three encoder outputs agree within 1e-4;
- both decoders take the same encoder outputs (ultralytics'): the top-300 selection is not
  continuous, and a float32 rounding difference in the encoder output can swap two
  proposals of nearly equal scores among the 2100 candidates;
- eval mode: the encoder's top-300 proposals (logits and boxes), the final layer's logits and
  boxes, and the top-300 detections (score, class, box) agree within 1e-4;
- the decoders in training mode (BatchNorm in eval mode, no denoising queries): every
  decoder layer's logits and boxes agree within 1e-4.

The decoder's random linear weights have half the ``1 / sqrt(fan in)`` scale: at full scale
each of the six random layers multiplies the float32 rounding differences of the two
implementations (their attention and sampling order their operations differently) about
threefold, 3e-6 after the first layer and 5e-4 after the sixth; at half scale they stay near
2e-6.

320 px keeps the test quick on a CPU; the anchors' valid mask (cells within 0.01 of the
border invalid) and the anchor cache of both sides follow the input size.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

REASON = ("ultralytics (AGPL-3.0) is installed only in the tox env 'weights': run this parity "
          "test with `tox -e weights`")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("YOLO_VERBOSE", "0")
os.environ.setdefault("YOLO_CONFIG_DIR",
                      os.path.join(tempfile.gettempdir(), "plugdet-ultralytics-config"))
ultralytics = pytest.importorskip("ultralytics", reason=REASON)

from plugdet_detr.zoo import ultralytics_rtdetr_state  # noqa: E402
from ultralytics.nn.tasks import RTDETRDetectionModel  # noqa: E402

from core.api import DetSample  # noqa: E402
from core.engine.full_config import load_full_config  # noqa: E402
from core.plugins import get_registries  # noqa: E402

ROOT = Path(__file__).resolve().parents[4]
CONFIG = ROOT / "plugins/detr/plugdet_detr/configs/rtdetr_r50vd_6x_coco.toml"
SIZE = 320
BATCH = 2
TOL = 1e-4
BN_EPS = 1e-5
ENCODER_LAYERS = (16, 19, 22)  # ultralytics' fused P3, P4, P5
BACKBONE_LAYERS = (2, 3, 4)  # ultralytics' S3, S4, S5
#: Scale of the decoder's random linear weights (see the module docstring).
DECODER_LINEAR_GAIN = 0.5


def run_layers(model: nn.Module, image: Tensor) -> list[Tensor]:
    """The outputs of ultralytics' layers 0-22 (all but the decoder), as its forward wires
    them."""
    outputs: list[Tensor] = []
    x: Any = image
    for layer in model.model[:-1]:
        if layer.f != -1:
            x = outputs[layer.f] if isinstance(layer.f, int) else \
                [x if j == -1 else outputs[j] for j in layer.f]
        x = layer(x)
        outputs.append(x)
    return outputs


def randomise_(module: nn.Module, generator: torch.Generator, linear_gain: float = 1.0) -> None:
    """Random weights of every kind the encoder and decoder have (no zero or constant
    initialisation left); linear weights of standard deviation ``linear_gain / sqrt(fan in)``.
    """
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, (nn.Conv2d, nn.Linear)):
                fan_in = sub.weight[0].numel()
                gain = linear_gain if isinstance(sub, nn.Linear) else 1.0
                sub.weight.normal_(0.0, gain / fan_in ** 0.5, generator=generator)
                if sub.bias is not None:
                    sub.bias.normal_(0.0, 0.2, generator=generator)
            elif isinstance(sub, (nn.BatchNorm2d, nn.LayerNorm)):
                sub.weight.uniform_(0.5, 1.5, generator=generator)
                sub.bias.normal_(0.0, 0.2, generator=generator)
            elif isinstance(sub, nn.MultiheadAttention):
                sub.in_proj_weight.normal_(0.0, (1.0 / sub.embed_dim) ** 0.5,
                                           generator=generator)
                sub.in_proj_bias.normal_(0.0, 0.2, generator=generator)
            elif isinstance(sub, nn.Embedding):
                sub.weight.normal_(0.0, 1.0, generator=generator)


def informative_ultralytics(generator: torch.Generator) -> nn.Module:
    """ultralytics' model with random encoder / decoder weights, plugdet's BatchNorm eps and
    BatchNorm statistics of two random batches."""
    torch.manual_seed(0)
    model = RTDETRDetectionModel("rtdetr-resnet50.yaml", nc=80, verbose=False)
    for layer in model.model[5:-1]:
        randomise_(layer, generator)
    randomise_(model.model[-1], generator, DECODER_LINEAR_GAIN)
    for sub in model.modules():
        if isinstance(sub, nn.BatchNorm2d):
            sub.eps = BN_EPS
            sub.reset_running_stats()
            sub.momentum = None  # cumulative average of the batches below
    decoder = model.model[-1]
    model.train()
    with torch.no_grad():
        for _ in range(2):
            outputs = run_layers(model, torch.rand(BATCH, 3, SIZE, SIZE, generator=generator))
            for proj, level in zip(decoder.input_proj, ENCODER_LAYERS, strict=True):
                proj(outputs[level])
    return model.eval()


def plugdet_model(peer: nn.Module) -> nn.Module:
    """plugdet's R50vd RT-DETR with ultralytics' encoder and decoder tensors (the backbone
    keeps its own: it is not used)."""
    config = load_full_config(str(CONFIG))
    model = get_registries().build("detector", config["model"], path="model")
    converted = ultralytics_rtdetr_state(peer.state_dict())
    missing, unexpected = model.load_state_dict(converted, strict=False)
    assert not unexpected
    assert missing and all(key.startswith("backbone.") for key in missing)
    assert len(converted) == sum(1 for key in model.state_dict()
                                 if not key.startswith("backbone."))
    return model.eval()


def max_diff(ours: Tensor, theirs: Tensor) -> float:
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    return float((ours - theirs).abs().max())


def check(name: str, diffs: dict[str, float]) -> None:
    """Print the largest differences (``pytest -s``) and assert each within :data:`TOL`."""
    print(f"{name}: " + ", ".join(f"{key} {value:.2g}" for key, value in diffs.items()))
    assert all(value <= TOL for value in diffs.values()), diffs


@pytest.fixture(scope="module")
def models() -> tuple[nn.Module, nn.Module, Tensor, list[Tensor]]:
    generator = torch.Generator().manual_seed(0)
    peer = informative_ultralytics(generator)
    model = plugdet_model(peer)
    image = torch.rand(BATCH, 3, SIZE, SIZE, generator=generator)
    with torch.no_grad():
        outputs = run_layers(peer, image)
    return peer, model, image, outputs


def test_encoder_and_decoder_match_ultralytics_in_eval_mode(models):
    peer, model, _, outputs = models
    backbone = tuple(outputs[i] for i in BACKBONE_LAYERS)
    with torch.no_grad():
        fused = model.neck(backbone)
        theirs_fused = [outputs[i] for i in ENCODER_LAYERS]
        detections, (boxes, logits, enc_boxes, enc_logits, _) = peer.model[-1](theirs_fused)
        result = model.head.decoder(tuple(theirs_fused))
        samples = [DetSample(ori_shape=(SIZE, SIZE), img_shape=(SIZE, SIZE),
                             pad_shape=(SIZE, SIZE)) for _ in range(BATCH)]
        predicted = model.head.predict(tuple(theirs_fused), samples)
    assert result.logits.shape == (1, BATCH, 300, 80)
    diffs = {f"encoder P{level + 3}": max_diff(ours, outputs[index])
             for level, (ours, index) in enumerate(zip(fused, ENCODER_LAYERS, strict=True))}
    diffs |= {"proposal logits": max_diff(result.enc_logits, enc_logits),
              "proposal boxes": max_diff(result.enc_boxes, enc_boxes),
              "logits": max_diff(result.logits, logits), "boxes": max_diff(result.boxes, boxes)}
    for image, instances in enumerate(predicted):
        theirs = detections[image]  # (300, 6): cx, cy, w, h, score, class
        cxcywh = theirs[:, :4]
        xyxy = torch.cat([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2],
                         dim=1)
        assert torch.equal(instances.labels, theirs[:, 5].long())
        diffs[f"image {image} scores"] = max_diff(instances.scores, theirs[:, 4])
        diffs[f"image {image} boxes / size"] = max_diff(instances.boxes / SIZE, xyxy)
    check("eval", diffs)


def test_every_decoder_layer_matches_ultralytics(models):
    peer, model, _, outputs = models
    fused = [outputs[i] for i in ENCODER_LAYERS]
    decoders = (peer.model[-1], model.head.decoder)
    for decoder in decoders:
        decoder.train()
        for sub in decoder.modules():
            if isinstance(sub, nn.BatchNorm2d):
                sub.eval()
    try:
        with torch.no_grad():
            boxes, logits, enc_boxes, enc_logits, dn_meta = peer.model[-1](fused)
            result = model.head.decoder(tuple(fused))
    finally:
        for decoder in decoders:
            decoder.eval()
    assert dn_meta is None
    assert result.logits.shape == (6, BATCH, 300, 80)
    diffs = {"proposal logits": max_diff(result.enc_logits, enc_logits),
             "proposal boxes": max_diff(result.enc_boxes, enc_boxes)}
    for layer in range(6):
        diffs[f"layer {layer} logits"] = max_diff(result.logits[layer], logits[layer])
        diffs[f"layer {layer} boxes"] = max_diff(result.boxes[layer], boxes[layer])
    check("training mode", diffs)
