"""RetinaNet head: shared class and box subnets on every pyramid level (Lin et al., 2017)."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, Unpack

import attrs
from torch import Tensor, nn

from core.api import (
    ConfigError,
    DenseHead,
    DenseHeadParts,
    DetSample,
    Instances,
    PostProcess,
)

CONV_KERNEL = 3
CLS_WEIGHT_STD = 0.01
#: Groups of the GroupNorm of the subnet convs with ``norm = "GN"``.
GN_GROUPS = 32
#: Normalisation after every subnet conv: "GN" is GroupNorm of :data:`GN_GROUPS` groups.
HeadNorm = Literal["GN"]


class RetinaHead(DenseHead):
    """Two subnets of ``stacked_convs`` 3x3 conv (+ norm) + ReLU, shared across levels,
    predicting per prior C class logits and ``bbox_coder.encode_size`` box values; everything
    else (priors, assign -> sample -> targets, losses, decode and NMS) is :class:`DenseHead`'s.

    :param num_classes: foreground classes C (no background logit; sigmoid per class).
    :param in_channels: channels of each input level.
    :param feat_channels: channels of the subnet convs.
    :param stacked_convs: convs per subnet before the predictor.
    :param prior_prob: initial foreground probability (bias of the class predictor).
    :param reg_decoded_bbox: compute ``loss_bbox`` on decoded boxes (IoU-type losses).
    :param norm: None (subnet convs with bias) or "GN": each subnet conv has no bias and is
        followed by GroupNorm(32) (torchvision's ``retinanet_resnet50_fpn_v2``, ATSS).
    :param min_bbox_size: None keeps every detection (torchvision); a number drops, before
        NMS, the boxes (clipped to the image) whose width or height is not above it
        (MMDetection's ``min_bbox_size``: 0 drops empty boxes).
    """

    part_defaults: ClassVar[DenseHeadParts] = {
        "prior_generator": {"type": "AnchorGenerator"},
        "assigner": {"type": "MaxIoUAssigner"},
        "sampler": {"type": "PseudoSampler"},
        "bbox_coder": {"type": "DeltaXYWHBBoxCoder"},
        "loss_cls": {"type": "FocalLoss"},
        "loss_bbox": {"type": "L1Loss"},
        "postprocess": {"type": "MultiClassNMS"},
    }

    def __init__(
        self,
        num_classes: int = 80,
        in_channels: int = 256,
        feat_channels: int = 256,
        stacked_convs: int = 4,
        prior_prob: float = 0.01,
        reg_decoded_bbox: bool = False,
        norm: HeadNorm | None = None,
        min_bbox_size: float | None = None,
        **parts: Unpack[DenseHeadParts],
    ) -> None:
        super().__init__(num_classes, reg_decoded_bbox, **parts)
        if not 0 < prior_prob < 1:
            raise ConfigError(f"prior_prob: expected a value in (0, 1), got {prior_prob}")
        num_priors = set(self.prior_generator.num_base_priors)
        if len(num_priors) != 1:
            raise ConfigError(
                "prior_generator: every level needs the same number of priors "
                f"per cell (the subnets are shared), got {sorted(num_priors)}"
            )
        self.num_base_priors = num_priors.pop()
        if norm not in (None, "GN"):
            raise ConfigError(f"norm: expected none or 'GN', got {norm!r}")
        if norm is not None and feat_channels % GN_GROUPS:
            raise ConfigError(f"feat_channels: expected a multiple of {GN_GROUPS} with norm "
                              f"'GN', got {feat_channels}")
        self.norm = norm
        self.min_bbox_size = min_bbox_size
        self.cls_convs = self._subnet(in_channels, feat_channels, stacked_convs)
        self.reg_convs = self._subnet(in_channels, feat_channels, stacked_convs)
        self.retina_cls = nn.Conv2d(
            feat_channels, self.num_base_priors * num_classes, CONV_KERNEL, padding=CONV_KERNEL // 2
        )
        self.retina_reg = nn.Conv2d(
            feat_channels,
            self.num_base_priors * self.bbox_coder.encode_size,
            CONV_KERNEL,
            padding=CONV_KERNEL // 2,
        )
        self._init_weights(prior_prob)

    def _subnet(self, in_channels: int, feat_channels: int, num_convs: int) -> nn.Sequential:
        """``num_convs`` times conv, ReLU (without norm: parameters at ``2 * i``) or conv,
        GroupNorm, ReLU (parameters at ``3 * i`` and ``3 * i + 1``)."""
        layers: list[nn.Module] = []
        for index in range(num_convs):
            channels = in_channels if index == 0 else feat_channels
            layers.append(nn.Conv2d(channels, feat_channels, CONV_KERNEL,
                                    padding=CONV_KERNEL // 2, bias=self.norm is None))
            if self.norm is not None:
                layers.append(nn.GroupNorm(GN_GROUPS, feat_channels))
            layers.append(nn.ReLU(inplace=True))
        return nn.Sequential(*layers)

    def _init_weights(self, prior_prob: float) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=CLS_WEIGHT_STD)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if self.retina_cls.bias is not None:
            nn.init.constant_(self.retina_cls.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, feats: tuple[Tensor, ...]) -> tuple[list[Tensor], list[Tensor]]:
        """:param feats: per level ``(B, in_channels, H_l, W_l)``.
        :returns: class logits per level ``(B, A * C, H_l, W_l)`` and box values per level
            ``(B, A * encode_size, H_l, W_l)``."""
        cls_scores, bbox_preds = [], []
        for x in feats:
            cls_scores.append(self.retina_cls(self.cls_convs(x)))
            bbox_preds.append(self.retina_reg(self.reg_convs(x)))
        return cls_scores, bbox_preds

    def predict_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                        samples: list[DetSample], aux_preds: list[Tensor] | None = None,
                        postprocess: PostProcess | None = None) -> list[Instances]:
        """:meth:`DenseHead.predict_by_feat`, small boxes dropped before NMS when
        ``min_bbox_size`` is set."""
        postprocess = self.postprocess if postprocess is None else postprocess
        if self.min_bbox_size is not None:
            postprocess = LargeBoxes(postprocess, self.min_bbox_size)
        return super().predict_by_feat(cls_scores, bbox_preds, samples, aux_preds, postprocess)


class LargeBoxes:
    """A post-process that passes on to ``postprocess`` only the candidate boxes whose width
    and height are above ``min_size`` (the others become invalid).

    :param postprocess: the selection and NMS.
    :param min_size: pixels."""

    def __init__(self, postprocess: PostProcess, min_size: float) -> None:
        self.postprocess = postprocess
        self.min_size = min_size

    def select(self, level_scores: list[Tensor]) -> Any:
        """``postprocess.select``."""
        return self.postprocess.select(level_scores)

    def __call__(self, boxes: Tensor, candidates: Any) -> list[Instances]:
        """:param boxes: ``(B, K, 4)`` decoded, clipped boxes of the candidates."""
        large = (boxes[..., 2:] - boxes[..., :2] > self.min_size).all(dim=-1)
        return self.postprocess(boxes, attrs.evolve(candidates, valid=candidates.valid & large))
