"""Helpers that run torchvision's RetinaNet on given tensors and copy its weights into ours.

torchvision's ``RetinaNet.forward`` normalises and resizes images with
``GeneralizedRCNNTransform``; to compare like with like these helpers skip that transform and
call the model's own parts (backbone, head, anchor generator, loss, post-processing) on the
same already-batched tensor that our detector receives.
"""

from __future__ import annotations

import torch
from plugdet_retinanet import RetinaHead, RetinaNet
from torch import Tensor, nn
from torchvision.models.detection import RetinaNet as TVRetinaNet
from torchvision.models.detection.image_list import ImageList

from core.models.backbones import ResNet
from core.models.necks import FPN
from core.models.priors import AnchorGenerator

#: torchvision's default RetinaNet anchor sizes (int-truncated octave scales).
TV_ANCHOR_SIZES = [
    [x, int(x * 2 ** (1 / 3)), int(x * 2 ** (2 / 3))] for x in (32, 64, 128, 256, 512)
]
TV_STRIDES = [8, 16, 32, 64, 128]
TV_FPN_CHANNELS = 256


def ours_like_torchvision(
    num_classes: int, depth: int = 50, detections_per_img: int = 300, low_quality_gt: str = "best"
) -> RetinaNet:
    """Our RetinaNet configured as torchvision's ``retinanet_resnet50_fpn`` (v1)."""
    backbone = ResNet(depth=depth, out_indices=(1, 2, 3))
    neck = FPN(
        backbone.out_channels,
        TV_FPN_CHANNELS,
        num_outs=5,
        add_extra_convs="on_output",
        relu_before_extra_convs=True,
    )
    head = RetinaHead(
        num_classes=num_classes,
        in_channels=TV_FPN_CHANNELS,
        feat_channels=TV_FPN_CHANNELS,
        prior_generator=AnchorGenerator(
            strides=TV_STRIDES, sizes=TV_ANCHOR_SIZES, round_base_anchors=True
        ),
        assigner={
            "type": "MaxIoUAssigner",
            "pos_iou_thr": 0.5,
            "neg_iou_thr": 0.4,
            "low_quality_gt": low_quality_gt,
        },
        max_per_img=detections_per_img,
    )
    return RetinaNet(backbone=backbone, neck=neck, head=head)


def torchvision_to_ours_state(tv_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename torchvision RetinaNet parameters to ours."""
    out = {}
    for key, value in tv_state.items():
        new = key
        if key.startswith("backbone.body."):
            new = "backbone." + key[len("backbone.body.") :]
        elif key.startswith("backbone.fpn.inner_blocks."):
            index, _, param = key[len("backbone.fpn.inner_blocks.") :].split(".")
            new = f"neck.lateral_convs.{index}.{param}"
        elif key.startswith("backbone.fpn.layer_blocks."):
            index, _, param = key[len("backbone.fpn.layer_blocks.") :].split(".")
            new = f"neck.fpn_convs.{index}.{param}"
        elif key.startswith("backbone.fpn.extra_blocks."):
            level, param = key[len("backbone.fpn.extra_blocks.") :].split(".")
            new = f"neck.extra_convs.{ {'p6': 0, 'p7': 1}[level] }.{param}"
        elif key.startswith("head.classification_head.conv."):
            index, _, param = key[len("head.classification_head.conv.") :].split(".")
            new = f"head.cls_convs.{2 * int(index)}.{param}"
        elif key.startswith("head.classification_head.cls_logits."):
            new = "head.retina_cls." + key.rsplit(".", 1)[1]
        elif key.startswith("head.regression_head.conv."):
            index, _, param = key[len("head.regression_head.conv.") :].split(".")
            new = f"head.reg_convs.{2 * int(index)}.{param}"
        elif key.startswith("head.regression_head.bbox_reg."):
            new = "head.retina_reg." + key.rsplit(".", 1)[1]
        out[new] = value
    return out


def copy_weights(tv_model: TVRetinaNet, ours: nn.Module) -> None:
    """Load torchvision's weights into ours; every tensor must find its place."""
    ours.load_state_dict(torchvision_to_ours_state(tv_model.state_dict()), strict=True)


def randomize_head(tv_model: TVRetinaNet, std: float, seed: int) -> None:
    """Give the head weights a larger spread so that random models produce detections."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in tv_model.head.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * std)


def tv_features(tv_model: TVRetinaNet, images: Tensor) -> list[Tensor]:
    return list(tv_model.backbone(images).values())


def tv_anchors(tv_model: TVRetinaNet, images: Tensor, feats: list[Tensor]) -> list[Tensor]:
    sizes = [tuple(images.shape[-2:])] * len(images)
    return tv_model.anchor_generator(ImageList(images, sizes), feats)


def tv_predict(
    tv_model: TVRetinaNet, images: Tensor, image_sizes: list[tuple[int, int]]
) -> list[dict[str, Tensor]]:
    """torchvision's inference on ``images`` without its resize/normalise transform."""
    feats = tv_features(tv_model, images)
    head_outputs = tv_model.head(feats)
    anchors = tv_anchors(tv_model, images, feats)
    num_per_level = [f.shape[-2] * f.shape[-1] for f in feats]
    num_anchors = head_outputs["cls_logits"].shape[1] // sum(num_per_level)
    num_per_level = [n * num_anchors for n in num_per_level]
    split_outputs = {k: list(v.split(num_per_level, dim=1)) for k, v in head_outputs.items()}
    split_anchors = [list(a.split(num_per_level)) for a in anchors]
    return tv_model.postprocess_detections(split_outputs, split_anchors, image_sizes)


def tv_loss(
    tv_model: TVRetinaNet, images: Tensor, targets: list[dict[str, Tensor]]
) -> dict[str, Tensor]:
    """torchvision's training losses on ``images`` without its transform."""
    feats = tv_features(tv_model, images)
    head_outputs = tv_model.head(feats)
    anchors = tv_anchors(tv_model, images, feats)
    return tv_model.compute_loss(targets, head_outputs, anchors)
