"""Interoperation with torchvision's Faster R-CNN and Mask R-CNN: matching config, weight
conversion, and running torchvision's model on already-batched tensors.

torchvision's ``GeneralizedRCNN.forward`` resizes and normalises images with its
``GeneralizedRCNNTransform``. To compare like with like, :class:`TorchvisionRunner` skips that
transform and calls the model's own parts (backbone, RPN, RoI heads) on exactly the
``(B, 3, H, W)`` tensor our detector receives; use H and W that are multiples of the largest
stride (64). torchvision's class 0 is the background, ours is the last class: weights and
labels are shifted accordingly.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any

from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN as TVFasterRCNN
from torchvision.models.detection.image_list import ImageList

from plugdet_faster_rcnn.key_maps import torchvision_state

#: Strides of torchvision's FPN levels (P2-P6) and of the RoIAlign levels (P2-P5).
TV_STRIDES = [4, 8, 16, 32, 64]
TV_ROI_STRIDES = [4, 8, 16, 32]
TV_ANCHOR_SIZES = [[32], [64], [128], [256], [512]]
TV_FPN_CHANNELS = 256
TV_FC_CHANNELS = 1024
TV_SMOOTH_L1_BETA = 1 / 9
TV_ROI_SAMPLING_RATIO = 2
TV_MASK_ROI_SIZE = 14
RESNET_IN_CHANNELS = [256, 512, 1024, 2048]


def torchvision_like_config(num_classes: int, detections_per_img: int = 100,
                            masks: bool = False) -> dict[str, Any]:
    """Model table of our Faster R-CNN built like torchvision's ``fasterrcnn_resnet50_fpn``
    (v1): C2-C5 into the FPN, P6 by max pooling, one anchor size per level, its matchers
    (low-quality rule: the prior's best gt), smooth L1 with beta 1/9, RoIAlign with sampling
    ratio 2 and ``aligned=False``, and trainable BatchNorm (torchvision without weights).
    With ``masks``, our Mask R-CNN built like ``maskrcnn_resnet50_fpn``: the same with a
    mask branch on 14x14 RoIAlign features (sampling ratio 2, ``aligned=False``).

    :param num_classes: foreground classes (torchvision's ``num_classes - 1``).
    :param detections_per_img: detections kept per image.
    :param masks: Mask R-CNN instead of Faster R-CNN.
    """
    smooth_l1 = {"type": "SmoothL1Loss", "beta": TV_SMOOTH_L1_BETA}
    config: dict[str, Any] = {
        "type": "FasterRCNN",
        "backbone": {"type": "ResNet", "depth": 50, "out_indices": [0, 1, 2, 3]},
        "neck": {"type": "FPN", "in_channels": RESNET_IN_CHANNELS,
                 "out_channels": TV_FPN_CHANNELS, "num_outs": len(TV_STRIDES)},
        "rpn_head": {
            "type": "RPNHead",
            "in_channels": TV_FPN_CHANNELS,
            "feat_channels": TV_FPN_CHANNELS,
            "prior_generator": {"type": "AnchorGenerator", "strides": TV_STRIDES,
                                "sizes": TV_ANCHOR_SIZES, "ratios": [0.5, 1.0, 2.0],
                                "round_base_anchors": True},
            "assigner": {"type": "MaxIoUAssigner", "pos_iou_thr": 0.7, "neg_iou_thr": 0.3,
                         "min_pos_iou": 0.0, "low_quality_gt": "best"},
            "loss_bbox": smooth_l1,
            "postprocess": {"type": "ProposalNMS", "nms_pre": 1000, "max_per_img": 1000},
            "train_postprocess": {"type": "ProposalNMS", "nms_pre": 2000,
                                  "max_per_img": 2000},
        },
        "roi_head": {
            "type": "StandardRoIHead",
            "num_classes": num_classes,
            "in_channels": TV_FPN_CHANNELS,
            "fc_channels": TV_FC_CHANNELS,
            "roi_extractor": {"type": "MultiLevelRoIAlign", "featmap_strides": TV_ROI_STRIDES,
                              "sampling_ratio": TV_ROI_SAMPLING_RATIO, "aligned": False},
            "loss_bbox": smooth_l1,
            "postprocess": {"type": "MultiClassNMS", "max_per_img": detections_per_img},
        },
    }
    if masks:
        config["type"] = "MaskRCNN"
        config["roi_head"] = {
            **config["roi_head"], "type": "MaskRoIHead",
            "mask_roi_extractor": {"type": "MultiLevelRoIAlign",
                                   "featmap_strides": TV_ROI_STRIDES,
                                   "out_size": TV_MASK_ROI_SIZE,
                                   "sampling_ratio": TV_ROI_SAMPLING_RATIO, "aligned": False},
        }
    return config


def load_torchvision_weights(ours: nn.Module, tv_model: TVFasterRCNN) -> None:
    """Copy every parameter and buffer of ``tv_model`` into ``ours`` (strict), renamed and
    with the background moved by :func:`~plugdet_faster_rcnn.key_maps.torchvision_state`."""
    ours.load_state_dict(torchvision_state(tv_model.state_dict()), strict=True)


class TorchvisionRunner:
    """Runs a torchvision Faster R-CNN (or Mask R-CNN) on a pre-batched, pre-normalised
    ``(B, 3, H, W)`` tensor; labels are ours (foreground ``0..C-1``) on the way in and out."""

    def __init__(self, model: TVFasterRCNN) -> None:
        self.model = model

    def features(self, images: Tensor) -> OrderedDict[str, Tensor]:
        """Pyramid levels ``(B, 256, H_l, W_l)`` by torchvision's names."""
        levels: OrderedDict[str, Tensor] = self.model.backbone(images)
        return levels

    def anchors(self, images: Tensor) -> list[Tensor]:
        """Per image ``(N, 4)`` RPN anchors of all levels."""
        feats = list(self.features(images).values())
        anchors: list[Tensor] = self.model.rpn.anchor_generator(self._image_list(images), feats)
        return anchors

    @staticmethod
    def _image_list(images: Tensor, image_sizes: list[tuple[int, int]] | None = None
                    ) -> ImageList:
        sizes: Sequence[tuple[int, ...]] = image_sizes or [tuple(images.shape[-2:])] * len(images)
        return ImageList(images, [tuple(s) for s in sizes])

    def proposals(self, images: Tensor, image_sizes: list[tuple[int, int]],
                  feats: OrderedDict[str, Tensor] | None = None) -> list[Tensor]:
        """Test-time proposals ``(R_i, 4)`` per image.

        :param feats: the pyramid levels of ``images`` when already computed."""
        proposals: list[Tensor]
        proposals, _ = self.model.rpn(self._image_list(images, image_sizes),
                                      self.features(images) if feats is None else feats)
        return proposals

    def rpn_outputs(self, feats: OrderedDict[str, Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level objectness logits ``(B, A, H_l, W_l)`` and box deltas
        ``(B, A * 4, H_l, W_l)``."""
        objectness: list[Tensor]
        deltas: list[Tensor]
        objectness, deltas = self.model.rpn.head(list(feats.values()))
        return objectness, deltas

    def box_outputs(self, feats: OrderedDict[str, Tensor], proposals: list[Tensor],
                    image_sizes: list[tuple[int, int]]) -> tuple[Tensor, Tensor]:
        """Class logits ``(K, 1 + C)`` (background first) and box deltas
        ``(K, (1 + C) * 4)`` of the proposals of all images, in order."""
        roi_heads = self.model.roi_heads
        pooled = roi_heads.box_roi_pool(feats, proposals, image_sizes)
        logits: Tensor
        deltas: Tensor
        logits, deltas = roi_heads.box_predictor(roi_heads.box_head(pooled))
        return logits, deltas

    def predict(self, images: Tensor, image_sizes: list[tuple[int, int]],
                feats: OrderedDict[str, Tensor] | None = None) -> list[dict[str, Tensor]]:
        """Detections (``boxes``, ``scores``, ``labels`` ours) in ``image_sizes`` pixels; a Mask
        R-CNN's with ``masks``, ``(N, 1, 28, 28)`` probabilities on the boxes' grids.

        :param feats: the pyramid levels of ``images`` when already computed."""
        feats = self.features(images) if feats is None else feats
        image_list = self._image_list(images, image_sizes)
        proposals, _ = self.model.rpn(image_list, feats)
        detections, _ = self.model.roi_heads(feats, proposals, image_list.image_sizes)
        return [{**d, "labels": d["labels"] - 1} for d in detections]

    def loss(self, images: Tensor, targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Training losses of the RPN and RoI heads (targets' labels ours; a Mask R-CNN's
        targets with ``masks``, ``(M, H, W)`` bitmaps), the heads in training mode and the
        backbone as it is."""
        tv_targets = [{**t, "labels": t["labels"] + 1} for t in targets]
        feats = self.features(images)
        image_list = self._image_list(images)
        with _training(self.model.rpn, self.model.roi_heads):
            proposals, rpn_losses = self.model.rpn(image_list, feats, tv_targets)
            _, roi_losses = self.model.roi_heads(feats, proposals, image_list.image_sizes,
                                                 tv_targets)
        return {**rpn_losses, **roi_losses}


@contextmanager
def _training(*modules: nn.Module) -> Any:
    modes = [m.training for m in modules]
    for module in modules:
        module.train()
    try:
        yield
    finally:
        for module, mode in zip(modules, modes, strict=True):
            module.train(mode)


