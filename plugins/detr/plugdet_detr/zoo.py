"""Weights of other RT-DETR implementations under plugdet's names.

* The original RT-DETR code (lyuwenyu/RT-DETR, ``rtdetr_pytorch``; Apache-2.0) saves its
  detector as ``backbone.*`` (``PResNet``), ``encoder.*`` (``HybridEncoder``) and ``decoder.*``
  (``RTDETRTransformer``, its decoder layers under ``decoder.decoder.layers.*``), the EMA
  model's state under ``ema`` -> ``module`` of a training checkpoint (else ``model``).
  plugdet's modules keep those names below ``backbone.``, ``neck.`` and ``head.decoder.``:
  :data:`REFERENCE_TABLE` maps them, and :class:`ReferenceConverter` (registered, source
  :data:`REFERENCE_SOURCE`) converts such a file into the ``rtdetr_r18vd`` / ``rtdetr_r50vd``
  models.
* ultralytics' ``rtdetr-resnet50.yaml`` (``RTDETRDetectionModel``; AGPL-3.0) holds the same
  hybrid encoder as its layers 5-22 and the decoder as layer 23:
  :func:`ultralytics_rtdetr_table` maps those. Its backbone (layers 0-4) is a plain ResNet,
  not a ResNet-vd: it has no counterpart in plugdet, so the table converts only the encoder
  and decoder of such a file (:func:`ultralytics_rtdetr_state`), never a whole detector.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

import attrs
import torch
from torch import Tensor, nn

from core.api import (
    COCO_CLASSES,
    CheckpointError,
    ClassRows,
    ConvertedState,
    PeerCheckpoint,
    TableConverter,
    indexed_prefixes,
    rename_keys,
)
from plugdet_detr.resnet_vd import ARCH_SETTINGS, BottleNeck, ResNetVd, Stage
from plugdet_detr.rtdetr import RTDETRHead

#: ``PeerCheckpoint.source`` of the original RT-DETR code's checkpoints.
REFERENCE_SOURCE = "rtdetr"
CONFIGS = "plugins/detr/configs"
#: Decoder layers whose class heads may change their class count when fitted.
MAX_DECODER_LAYERS = 12

#: The original code's prefixes -> plugdet's (longest prefix wins).
REFERENCE_TABLE: dict[str, str] = {
    "backbone.": "backbone.",
    "encoder.": "neck.",
    "decoder.": "head.decoder.",
    "decoder.decoder.layers.": "head.decoder.layers.",
}


def score_row_keys(num_layers: int) -> tuple[str, ...]:
    """plugdet's keys whose dim 0 holds class rows: the proposal and layer class heads and the
    denoising label embedding (``C`` rows, then its padding row)."""
    heads = ["head.decoder.enc_score_head", *(f"head.decoder.dec_score_head.{i}"
                                              for i in range(num_layers))]
    return (*(f"{head}.{kind}" for head in heads for kind in ("weight", "bias")),
            "head.decoder.denoising_class_embed.weight")


def reference_state(contents: Mapping[str, Any]) -> dict[str, Tensor] | None:
    """The detector's tensors of a checkpoint the original code saved: ``ema`` -> ``module``
    when there, else ``model``; None when the dict has neither layout."""
    ema = contents.get("ema")
    candidates = [ema.get("module") if isinstance(ema, Mapping) else None,
                  contents.get("model")]
    for state in candidates:
        if isinstance(state, Mapping) and state and all(
                isinstance(value, Tensor) for value in state.values()) and any(
                str(key).startswith("decoder.dec_score_head.") for key in state):
            return {str(key): value for key, value in state.items()}
    return None


_BLOCK = re.compile(r"^backbone\.res_layers\.(\d+)\.blocks\.(\d+)\.")


def reference_architecture(state: Mapping[str, Tensor]) -> str:
    """``rtdetr_r{depth}vd`` told from the backbone's blocks per stage and block type; ``""``
    for a backbone of no known depth."""
    counts = [0] * 4
    for key in state:
        match = _BLOCK.match(key)
        if match and int(match.group(1)) < len(counts):
            stage, block = int(match.group(1)), int(match.group(2))
            counts[stage] = max(counts[stage], block + 1)
    bottleneck = "backbone.res_layers.0.blocks.0.branch2c.conv.weight" in state
    return next((f"rtdetr_r{depth}vd" for depth, setting in ARCH_SETTINGS.items()
                 if setting == (bottleneck, tuple(counts))), "")


@attrs.frozen
class ReferenceConverter(TableConverter):
    """A checkpoint of the original RT-DETR code -> plugdet's RT-DETR of the same backbone
    depth (see :class:`~core.api.TableConverter`); 80 COCO classes unless the file names
    others.

    :ivar depth: the ResNet-vd depth of the model and the file.
    """

    depth: int = 18
    source = REFERENCE_SOURCE
    licence = "Apache-2.0"
    known_classes = (COCO_CLASSES,)
    class_row_keys = score_row_keys(MAX_DECODER_LAYERS)

    def fits_model(self, model: nn.Module) -> bool:
        """An RT-DETR head on a ResNet-vd of :attr:`depth`."""
        backbone = getattr(model, "backbone", None)
        return isinstance(getattr(model, "head", None), RTDETRHead) and isinstance(
            backbone, ResNetVd) and _depth_of(backbone) == self.depth

    def accepts(self, checkpoint: PeerCheckpoint, model: nn.Module) -> bool:
        """A file of this source whose backbone has :attr:`depth` (named, or told from its
        keys), for a model that :meth:`fits_model`."""
        if checkpoint.source != self.source or not self.fits_model(model):
            return False
        architecture = checkpoint.architecture or reference_architecture(checkpoint.state)
        return architecture in self.architectures

    def convert(self, checkpoint: PeerCheckpoint, model: nn.Module) -> ConvertedState:
        """Our state of ``model`` from the file, every key and shape checked.

        :raises CheckpointError: naming the file, for missing, unexpected or mis-shaped
            keys."""
        head = model.get_submodule("head")
        if not isinstance(head, RTDETRHead):
            raise CheckpointError(f"{self.name} converts into an RTDETRHead, the model has a "
                                  f"{type(head).__name__}")
        keys = score_row_keys(len(head.decoder.layers))
        ours = model.state_dict()
        state = self.checked_state(checkpoint, ours)
        num_classes = state[self.source_key(keys[0])].shape[0]
        if any(state[self.source_key(key)].shape[0] != num_classes for key in keys[:-1]) \
                or state[self.source_key(keys[-1])].shape[0] != num_classes + 1:
            raise CheckpointError(
                f"checkpoint {checkpoint.path} ({checkpoint.describe()}): its class heads and "
                f"denoising embedding do not agree on {num_classes} classes")
        return ConvertedState(state=self.renamed(state, ours),
                              class_rows=dict.fromkeys(keys, ClassRows()),
                              classes=self.classes(checkpoint, num_classes))


def _depth_of(backbone: ResNetVd) -> int:
    """The depth whose blocks per stage and block type ``backbone`` has."""
    stages = [cast(Stage, stage) for stage in backbone.res_layers]
    counts = tuple(len(stage.blocks) for stage in stages)
    bottleneck = isinstance(stages[0].blocks[0], BottleNeck)
    return next((depth for depth, setting in ARCH_SETTINGS.items()
                 if setting == (bottleneck, counts)), 0)


# registered name (published COCO box AP), config, table, architecture, a key of every such
# file, the backbone depth
CONVERTERS: tuple[ReferenceConverter, ...] = (
    ReferenceConverter(  # rtdetr_r18vd_dec3_6x_coco: 46.5
        "rtdetr/rtdetr_r18vd", f"{CONFIGS}/rtdetr_r18vd_6x_coco.toml", REFERENCE_TABLE,
        ("rtdetr_r18vd",), "decoder.dec_score_head.0.weight", depth=18),
    ReferenceConverter(  # rtdetr_r50vd_6x_coco: 53.1
        "rtdetr/rtdetr_r50vd", f"{CONFIGS}/rtdetr_r50vd_6x_coco.toml", REFERENCE_TABLE,
        ("rtdetr_r50vd",), "decoder.dec_score_head.0.weight", depth=50),
)


# ---- ultralytics' rtdetr-resnet50.yaml: encoder and decoder only --------------------------

def _conv(theirs: str, ours: str, norm: str = "norm") -> dict[str, str]:
    """An ultralytics ``Conv`` (``conv``, ``bn``) onto a conv + norm pair of ours."""
    return {f"{theirs}conv.": f"{ours}conv.", f"{theirs}bn.": f"{ours}{norm}."}


def _rep_c3(theirs: str, ours: str, num_blocks: int) -> dict[str, str]:
    """An ultralytics ``RepC3`` (``cv1``, ``cv2``, ``m.i.conv1/conv2``, ``cv3``) onto ours."""
    table = {**_conv(f"{theirs}cv1.", f"{ours}conv1."), **_conv(f"{theirs}cv2.", f"{ours}conv2."),
             **_conv(f"{theirs}cv3.", f"{ours}conv3.")}
    for block in range(num_blocks):
        for conv in ("conv1", "conv2"):
            table.update(_conv(f"{theirs}m.{block}.{conv}.", f"{ours}bottlenecks.{block}.{conv}."))
    return table


def ultralytics_rtdetr_table(num_blocks: int = 3, num_levels: int = 3) -> dict[str, str]:
    """ultralytics' prefixes of ``rtdetr-resnet50.yaml``'s layers 5-23 -> plugdet's.

    Layer 5 projects S5, 6 is the intra-scale transformer (AIFI), 7 / 12 the lateral convs,
    9 / 14 the S4 / S3 projections, 11 / 16 the top-down RepC3 blocks, 17 / 20 the
    down-sampling convs, 19 / 22 the bottom-up RepC3 blocks, 23 the decoder with its own input
    projections. Layers 0-4 (the backbone) have no counterpart.

    :param num_blocks: RepVGG blocks per RepC3 block. :param num_levels: decoder levels.
    """
    table: dict[str, str] = {}
    for layer, level in ((5, 2), (9, 1), (14, 0)):
        table[f"model.{layer}.conv."] = f"neck.input_proj.{level}.0."
        table[f"model.{layer}.bn."] = f"neck.input_proj.{level}.1."
    aifi = "neck.encoder.0.layers.0."
    table.update({"model.6.ma.": f"{aifi}self_attn.", "model.6.fc1.": f"{aifi}linear1.",
                  "model.6.fc2.": f"{aifi}linear2.", "model.6.norm1.": f"{aifi}norm1.",
                  "model.6.norm2.": f"{aifi}norm2."})
    for layer, ours in ((7, "lateral_convs.0."), (12, "lateral_convs.1."),
                        (17, "downsample_convs.0."), (20, "downsample_convs.1.")):
        table.update(_conv(f"model.{layer}.", f"neck.{ours}"))
    for layer, ours in ((11, "fpn_blocks.0."), (16, "fpn_blocks.1."), (19, "pan_blocks.0."),
                        (22, "pan_blocks.1.")):
        table.update(_rep_c3(f"model.{layer}.", f"neck.{ours}", num_blocks))
    table["model.23."] = "head.decoder."
    table["model.23.decoder.layers."] = "head.decoder.layers."
    table.update(indexed_prefixes("model.23.input_proj.{}.0.", "head.decoder.input_proj.{}.conv.",
                                  num_levels))
    table.update(indexed_prefixes("model.23.input_proj.{}.1.", "head.decoder.input_proj.{}.norm.",
                                  num_levels))
    return table


#: ultralytics' backbone layers of ``rtdetr-resnet50.yaml``, which have no counterpart.
ULTRALYTICS_BACKBONE = re.compile(r"^model\.[0-4]\.")


def ultralytics_rtdetr_state(state: Mapping[str, Tensor], num_blocks: int = 3
                             ) -> dict[str, Tensor]:
    """The encoder and decoder tensors of an ultralytics ``rtdetr-resnet50.yaml`` state under
    plugdet's names (``neck.*``, ``head.decoder.*``); the backbone's are left out.

    ultralytics' denoising label embedding has no padding row: a zero row is appended (it is
    the padding index's, never trained).

    :raises KeyError: naming the keys of layers 5-23 the table does not map."""
    head = {key: value for key, value in state.items() if not ULTRALYTICS_BACKBONE.match(key)}
    levels = sum(1 for key in head if re.fullmatch(r"model\.23\.input_proj\.\d+\.0\.weight", key))
    renamed = rename_keys(head, ultralytics_rtdetr_table(num_blocks, levels))
    embed = "head.decoder.denoising_class_embed.weight"
    if embed in renamed:
        weight = renamed[embed]
        renamed[embed] = torch.cat([weight, weight.new_zeros(1, weight.shape[1])])
    return renamed
