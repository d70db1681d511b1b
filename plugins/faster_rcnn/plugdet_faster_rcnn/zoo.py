"""Converters (stage ``weight_converter``) of torchvision's and MMDetection's Faster R-CNN
and torchvision's Mask R-CNN checkpoints: the key tables of
:mod:`plugdet_faster_rcnn.key_maps` applied to a file and checked against the model the config
builds."""

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
from plugdet_faster_rcnn import key_maps
from plugdet_faster_rcnn.key_maps import (
    BOX_SIZE,
    CLS_KEYS,
    MASK_KEYS,
    REG_KEYS,
    background_last,
)

CONFIGS = "plugins/faster_rcnn/configs/pretrained"


class FasterRCNNConverter(TableConverter):
    """A checkpoint of one source and architecture -> our Faster R-CNN names (see
    :class:`~core.api.TableConverter`); the box predictor's class rows and box blocks are
    fitted to the dataset's classes."""

    class_row_keys: ClassVar[tuple[str, ...]] = CLS_KEYS + REG_KEYS
    #: The file's box predictor has the background first, with box deltas (torchvision).
    background_first: ClassVar[bool] = False
    #: The class name of the RoI head this architecture converts into.
    roi_head_type: ClassVar[str] = "StandardRoIHead"

    def fits_model(self, model: nn.Module) -> bool:
        """A model with an RoI head of ours of :attr:`roi_head_type`."""
        return type(getattr(model, "roi_head", None)).__name__ == self.roi_head_type

    def convert(self, checkpoint: PeerCheckpoint, model: nn.Module) -> ConvertedState:
        """Our state of ``model``'s architecture from the file.

        :raises CheckpointError: naming the file, for missing, unexpected or mis-shaped keys,
            or for model parameters this source has no counterpart of."""
        ours = model.state_dict()
        state = self.checked_state(checkpoint, ours)
        num_classes = self._num_classes(checkpoint, state)
        converted = self.renamed(state, ours)
        if self.background_first:
            converted = {key: background_last(key, value) for key, value in converted.items()}
        class_rows = {**dict.fromkeys(CLS_KEYS, ClassRows()),
                      **dict.fromkeys(REG_KEYS, ClassRows(rows_per_class=BOX_SIZE))}
        return ConvertedState(state=converted, class_rows=class_rows,
                              classes=self.classes(checkpoint, num_classes))

    def _num_classes(self, checkpoint: PeerCheckpoint, state: Mapping[str, Tensor]) -> int:
        """The file's foreground classes: its class rows less the background, with
        :data:`BOX_SIZE` box rows per class (and one box for torchvision's background).

        :raises CheckpointError: the class and box rows disagree."""
        cls_rows, reg_rows = (len(state[self.source_key(keys[1])])
                              for keys in (CLS_KEYS, REG_KEYS))
        boxes = cls_rows if self.background_first else cls_rows - 1
        if cls_rows < 2 or reg_rows != BOX_SIZE * boxes:
            raise CheckpointError(
                f"checkpoint {checkpoint.path} ({checkpoint.describe()}): {cls_rows} class rows "
                f"and {reg_rows} box rows are not the class-specific box predictor of "
                f"{self.name}")
        return cls_rows - 1


class TorchvisionConverter(FasterRCNNConverter):
    """torchvision's files: the background first, with box deltas."""

    source = "torchvision"
    licence = "BSD-3-Clause"
    background_first = True
    known_classes = (TORCHVISION_COCO_CLASSES,)

    def normalized(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Files of torchvision < 0.13 renamed as torchvision renames them on load."""
        return key_maps.torchvision_legacy_renamed(state)


class TorchvisionMaskConverter(TorchvisionConverter):
    """torchvision's Mask R-CNN files: Faster R-CNN's, and class-specific mask logits whose
    background channel (the first) is dropped; the mask channels are fitted to the dataset's
    classes like the box predictor's rows."""

    class_row_keys = CLS_KEYS + REG_KEYS + MASK_KEYS
    roi_head_type = "MaskRoIHead"

    def accepts(self, checkpoint: PeerCheckpoint, model: nn.Module) -> bool:
        """A torchvision file with a mask predictor (:attr:`signature`), whatever Faster
        R-CNN architecture its box keys suggest, for a model with our mask RoI head."""
        return (checkpoint.source == self.source and self.fits_model(model)
                and self.signature in self.normalized(checkpoint.state))

    def convert(self, checkpoint: PeerCheckpoint, model: nn.Module) -> ConvertedState:
        """Our state of ``model``'s architecture from the file (see
        :meth:`FasterRCNNConverter.convert`)."""
        converted = super().convert(checkpoint, model)
        return attrs.evolve(converted, class_rows={**converted.class_rows,
                                                   **dict.fromkeys(MASK_KEYS, ClassRows())})


class MMDetConverter(FasterRCNNConverter):
    """MMDetection's files: 80 COCO classes unless the file names others."""

    source = "mmdet"
    licence = "Apache-2.0"
    known_classes = (COCO_CLASSES,)


# registered name (published box AP on COCO), config, key table, the file's architecture
# names, a key only this architecture has
CONVERTERS: tuple[FasterRCNNConverter, ...] = (
    TorchvisionConverter(  # COCO_V1: 37.0
        "torchvision/fasterrcnn_resnet50_fpn",
        f"{CONFIGS}/faster_rcnn_r50_fpn_torchvision_coco.toml",
        key_maps.TORCHVISION_FASTER_RCNN, ("fasterrcnn_resnet50_fpn",),
        "roi_heads.box_head.fc6.weight"),
    TorchvisionConverter(  # COCO_V1: 46.7
        "torchvision/fasterrcnn_resnet50_fpn_v2",
        f"{CONFIGS}/faster_rcnn_r50_fpn_v2_torchvision_coco.toml",
        key_maps.TORCHVISION_FASTER_RCNN_V2, ("fasterrcnn_resnet50_fpn_v2",),
        "roi_heads.box_head.5.weight"),
    TorchvisionMaskConverter(  # COCO_V1: 37.9 box, 34.6 mask
        "torchvision/maskrcnn_resnet50_fpn",
        f"{CONFIGS}/mask_rcnn_r50_fpn_torchvision_coco.toml",
        key_maps.TORCHVISION_MASK_RCNN, ("maskrcnn_resnet50_fpn",),
        "roi_heads.mask_predictor.mask_fcn_logits.weight"),
    MMDetConverter(  # faster-rcnn_r50_fpn_1x_coco: 37.4
        "mmdet/faster_rcnn_r50_fpn", f"{CONFIGS}/faster_rcnn_r50_fpn_mmdet_coco.toml",
        key_maps.MMDET_FASTER_RCNN, ("FasterRCNN",), "roi_head.bbox_head.shared_fcs.0.weight"),
)
