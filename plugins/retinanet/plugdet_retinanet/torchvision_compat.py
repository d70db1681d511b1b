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

from plugdet_retinanet.key_maps import torchvision_names

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

    def head_outputs(self, feats: list[Tensor]) -> dict[str, Tensor]:
        """``cls_logits`` ``(B, N, C)`` and ``bbox_regression`` ``(B, N, 4)`` of all levels'
        priors, from the pyramid levels."""
        outputs: dict[str, Tensor] = self.model.head(feats)
        return outputs

    def predict(
        self, images: Tensor, image_sizes: list[tuple[int, int]],
        feats: list[Tensor] | None = None,
    ) -> list[dict[str, Tensor]]:
        """Detections (``boxes``, ``scores``, ``labels``) in ``image_sizes`` coordinates.

        :param feats: the pyramid levels of ``images`` when already computed."""
        feats = self.features(images) if feats is None else feats
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
    """Copy every parameter and buffer of ``tv_model`` into ``ours`` (strict), renamed by
    :func:`~plugdet_retinanet.key_maps.torchvision_names`; the class rows stay as they are
    (both models are built with the same classes)."""
    ours.load_state_dict(torchvision_names(tv_model.state_dict()), strict=True)
