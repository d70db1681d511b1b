"""Converters (stage ``weight_converter``) of torchvision's and MMDetection's RetinaNet and
ATSS checkpoints: the key tables of :mod:`plugdet_retinanet.key_maps` applied to a file and
checked against the model the config builds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import attrs
from torch import Tensor, nn

from core.api import (
    COCO_CLASSES,
    TORCHVISION_COCO_CLASSES,
    CheckpointError,
    ClassRows,
    ConvertedState,
    PeerCheckpoint,
    TableConverter,
)
from plugdet_retinanet import key_maps
from plugdet_retinanet.key_maps import CLS_KEYS, without_background_rows
from plugdet_retinanet.retina_head import RetinaHead

CONFIGS = "plugins/retinanet/configs/pretrained"


@attrs.frozen
class DenseHeadConverter(TableConverter):
    """A checkpoint of one source and architecture -> our RetinaNet / ATSS names (see
    :class:`~core.api.TableConverter`).

    :ivar head_type: class name of the model's head.
    """

    head_type: str = "RetinaHead"
    class_row_keys = CLS_KEYS
    #: Rows before the classes in each anchor's block of the file's class predictor.
    background_rows: ClassVar[int] = 0

    def fits_model(self, model: nn.Module) -> bool:
        """A model with this head."""
        return type(getattr(model, "head", None)).__name__ == self.head_type

    def convert(self, checkpoint: PeerCheckpoint, model: nn.Module) -> ConvertedState:
        """Our state of ``model``'s architecture from the file.

        :raises CheckpointError: naming the file, for missing, unexpected or mis-shaped keys,
            or for model parameters this source has no counterpart of."""
        ours = model.state_dict()
        state = self.checked_state(checkpoint, ours)
        head = model.get_submodule("head")
        if not isinstance(head, RetinaHead):
            raise CheckpointError(f"{self.name} converts into a RetinaHead or ATSSHead, the "
                                  f"model has a {type(head).__name__}")
        groups = head.num_base_priors
        rows = len(state[self.source_key(CLS_KEYS[1])])
        if rows % groups or rows // groups <= self.background_rows:
            raise CheckpointError(
                f"checkpoint {checkpoint.path} ({checkpoint.describe()}): {rows} class rows "
                f"are not {groups} anchors' blocks of classes for {self.name}")
        converted = self.renamed(state, ours)
        if self.background_rows:
            for key in CLS_KEYS:
                converted[key] = without_background_rows(converted[key], groups)
        return ConvertedState(
            state=converted, class_rows=dict.fromkeys(CLS_KEYS, ClassRows(groups=groups)),
            classes=self.classes(checkpoint, rows // groups - self.background_rows))


class TorchvisionConverter(DenseHeadConverter):
    """torchvision's files: a background row first in each anchor's block of classes."""

    source = "torchvision"
    licence = "BSD-3-Clause"
    background_rows = 1
    known_classes = (TORCHVISION_COCO_CLASSES,)

    def normalized(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Files of torchvision < 0.13 renamed as torchvision renames them on load."""
        return key_maps.torchvision_legacy_renamed(state)


class MMDetConverter(DenseHeadConverter):
    """MMDetection's files: 80 COCO classes unless the file names others."""

    source = "mmdet"
    licence = "Apache-2.0"
    known_classes = (COCO_CLASSES,)


# registered name (published box AP on COCO), config, key table, the file's architecture
# names, a key only this architecture has, the head
CONVERTERS: tuple[DenseHeadConverter, ...] = (
    TorchvisionConverter(  # COCO_V1: 36.4
        "torchvision/retinanet_resnet50_fpn", f"{CONFIGS}/retinanet_r50_fpn_torchvision_coco.toml",
        key_maps.TORCHVISION_RETINANET, ("retinanet_resnet50_fpn",),
        "head.classification_head.conv.0.0.bias"),
    TorchvisionConverter(  # COCO_V1: 41.5
        "torchvision/retinanet_resnet50_fpn_v2",
        f"{CONFIGS}/retinanet_r50_fpn_v2_torchvision_coco.toml",
        key_maps.TORCHVISION_RETINANET_V2, ("retinanet_resnet50_fpn_v2",),
        "head.classification_head.conv.0.1.weight"),
    MMDetConverter(  # retinanet_r50_fpn_1x_coco: 36.5
        "mmdet/retinanet_r50_fpn", f"{CONFIGS}/retinanet_r50_fpn_mmdet_coco.toml",
        key_maps.MMDET_RETINANET, ("RetinaNet",), "bbox_head.retina_cls.weight"),
    MMDetConverter(  # atss_r50_fpn_1x_coco: 39.4
        "mmdet/atss_r50_fpn", f"{CONFIGS}/atss_r50_fpn_mmdet_coco.toml", key_maps.MMDET_ATSS,
        ("ATSS",), "bbox_head.atss_centerness.weight", head_type="ATSSHead"),
)
