"""Interoperation with torchvision's RetinaNet: matching config, weight conversion, and running
torchvision's model on already-batched tensors.

torchvision's ``RetinaNet.forward`` resizes and normalises images with its
``GeneralizedRCNNTransform``. To compare like with like, :class:`TorchvisionRunner` skips that
transform and calls the model's own parts (backbone, head, anchor generator, loss,
post-processing) on exactly the ``(B, 3, H, W)`` tensor our detector receives. Use H and W that
are multiples of the largest stride (128): torchvision infers strides as image size // feature
size.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models.detection import RetinaNet as TVRetinaNet
from torchvision.models.detection.image_list import ImageList

#: Strides of torchvision's RetinaNet levels (P3-P7).
TV_STRIDES = [8, 16, 32, 64, 128]
#: torchvision's default anchor sizes: int-truncated octave scales of 32 * 2 ** level.
TV_ANCHOR_SIZES = [
    [x, int(x * 2 ** (1 / 3)), int(x * 2 ** (2 / 3))] for x in (32, 64, 128, 256, 512)
]
TV_FPN_CHANNELS = 256
TV_DETECTIONS_PER_IMG = 300
RESNET_OUT_INDICES = [1, 2, 3]  # C3-C5
BOTTLENECK_EXPANSION = 4
BASIC_BLOCK_DEPTHS = (18, 34)
BASE_WIDTH = 64

# torchvision name prefix -> our name prefix, for parameters kept 1:1
_DIRECT_PREFIXES = {
    "backbone.body.": "backbone.",
    "head.classification_head.cls_logits.": "head.retina_cls.",
    "head.regression_head.bbox_reg.": "head.retina_reg.",
}
# torchvision prefix of indexed blocks -> (our prefix, index multiplier): torchvision wraps each
# conv in a Sequential (".i.0.weight"); our subnets interleave conv and ReLU (".2i.weight").
_INDEXED_PREFIXES = {
    "backbone.fpn.inner_blocks.": ("neck.lateral_convs.", 1),
    "backbone.fpn.layer_blocks.": ("neck.fpn_convs.", 1),
    "head.classification_head.conv.": ("head.cls_convs.", 2),
    "head.regression_head.conv.": ("head.reg_convs.", 2),
}
_EXTRA_LEVELS = {"backbone.fpn.extra_blocks.p6.": 0, "backbone.fpn.extra_blocks.p7.": 1}


def torchvision_like_config(
    num_classes: int, depth: int = 50, max_per_img: int = TV_DETECTIONS_PER_IMG
) -> dict[str, Any]:
    """Model table of our RetinaNet built like torchvision's ``retinanet_resnet50_fpn`` (v1):
    C3-C5 into the FPN, P6 from P5 ("on_output"), torchvision's rounded anchors, its matcher's
    low-quality rule (best gt), and trainable BatchNorm (torchvision without weights)."""
    expansion = 1 if depth in BASIC_BLOCK_DEPTHS else BOTTLENECK_EXPANSION
    in_channels = [BASE_WIDTH * 2**i * expansion for i in RESNET_OUT_INDICES]
    return {
        "type": "RetinaNet",
        "backbone": {"type": "ResNet", "depth": depth, "out_indices": RESNET_OUT_INDICES},
        "neck": {
            "type": "FPN",
            "in_channels": in_channels,
            "out_channels": TV_FPN_CHANNELS,
            "num_outs": len(TV_STRIDES),
            "add_extra_convs": "on_output",
            "relu_before_extra_convs": True,
        },
        "head": {
            "type": "RetinaHead",
            "num_classes": num_classes,
            "in_channels": TV_FPN_CHANNELS,
            "feat_channels": TV_FPN_CHANNELS,
            "prior_generator": {
                "type": "AnchorGenerator",
                "strides": TV_STRIDES,
                "sizes": TV_ANCHOR_SIZES,
                "round_base_anchors": True,
            },
            "assigner": {
                "type": "MaxIoUAssigner",
                "pos_iou_thr": 0.5,
                "neg_iou_thr": 0.4,
                "low_quality_gt": "best",
            },
            "postprocess": {
                "type": "MultiClassNMS",
                "score_thr": 0.05,
                "nms_pre": 1000,
                "iou_threshold": 0.5,
                "max_per_img": max_per_img,
            },
        },
    }


def _rename(key: str) -> str:
    for old, new in _DIRECT_PREFIXES.items():
        if key.startswith(old):
            return new + key[len(old) :]
    for old, (new, multiplier) in _INDEXED_PREFIXES.items():
        if key.startswith(old):
            index, _, param = key[len(old) :].split(".")
            return f"{new}{int(index) * multiplier}.{param}"
    for old, level in _EXTRA_LEVELS.items():
        if key.startswith(old):
            return f"neck.extra_convs.{level}.{key[len(old) :]}"
    raise KeyError(f"no counterpart for torchvision RetinaNet parameter {key!r}")


def convert_torchvision_state(tv_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a torchvision RetinaNet (v1) state dict to our parameter names.

    :raises KeyError: for a parameter without counterpart (e.g. a v2 GroupNorm head).
    """
    return {_rename(key): value for key, value in tv_state.items()}


class TorchvisionRunner:
    """Runs a torchvision RetinaNet on a pre-batched, pre-normalised ``(B, 3, H, W)`` tensor."""

    def __init__(self, model: TVRetinaNet) -> None:
        self.model = model

    def anchors(self, images: Tensor, feats: list[Tensor]) -> list[Tensor]:
        """Per image ``(N, 4)`` anchors of all levels."""
        sizes = [tuple(images.shape[-2:])] * len(images)
        anchors: list[Tensor] = self.model.anchor_generator(ImageList(images, sizes), feats)
        return anchors

    def features(self, images: Tensor) -> list[Tensor]:
        """Pyramid levels ``(B, 256, H_l, W_l)``."""
        return list(self.model.backbone(images).values())

    def predict(
        self, images: Tensor, image_sizes: list[tuple[int, int]]
    ) -> list[dict[str, Tensor]]:
        """Detections (``boxes``, ``scores``, ``labels``) in ``image_sizes`` coordinates."""
        feats = self.features(images)
        head_outputs = self.model.head(feats)
        anchors = self.anchors(images, feats)
        num_per_level = [f.shape[-2] * f.shape[-1] for f in feats]
        num_anchors = head_outputs["cls_logits"].shape[1] // sum(num_per_level)
        num_per_level = [n * num_anchors for n in num_per_level]
        split_outputs = {k: list(v.split(num_per_level, dim=1)) for k, v in head_outputs.items()}
        split_anchors = [list(torch.split(a, num_per_level)) for a in anchors]
        detections: list[dict[str, Tensor]] = self.model.postprocess_detections(
            split_outputs, split_anchors, image_sizes)
        return detections

    def loss(self, images: Tensor, targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Training losses (``classification``, ``bbox_regression``)."""
        feats = self.features(images)
        head_outputs = self.model.head(feats)
        losses: dict[str, Tensor] = self.model.compute_loss(targets, head_outputs,
                                                            self.anchors(images, feats))
        return losses


def load_torchvision_weights(ours: nn.Module, tv_model: TVRetinaNet) -> None:
    """Copy every parameter and buffer of ``tv_model`` into ``ours`` (strict)."""
    ours.load_state_dict(convert_torchvision_state(tv_model.state_dict()), strict=True)
