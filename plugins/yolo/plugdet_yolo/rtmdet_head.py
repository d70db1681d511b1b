"""RTMDet head: class and box branches whose convs are shared across levels with a separate
BatchNorm per level, dynamic soft-label assignment, quality focal and GIoU losses."""

from __future__ import annotations

import math
from typing import ClassVar, Unpack, cast

import torch.nn.functional as F
from torch import Tensor, nn

from core.api import (
    ConfigError,
    DenseHead,
    DenseHeadParts,
    DetSample,
)
from plugdet_yolo.layers import BN_EPS, BN_MOMENTUM, make_divisible

BRANCH_KERNEL = 3
NUM_SIDES = 4
#: Weight init of every conv and the prior probability of the class logits' bias.
INIT_STD = 0.01
PRIOR_PROB = 0.01



class RTMDetHead(DenseHead):
    """Per level, a class branch and a box branch of ``stacked_convs`` 3x3 conv-BN-SiLU
    (``feat_channels`` wide) followed by a 1x1 conv to C class logits, resp. 4 distances.
    With ``share_conv`` the 3x3 convs are shared by all levels and only their BatchNorms
    (and the 1x1 predictors) belong to a level. The distances ``(left, top, right, bottom)``
    are in stride units (no exp, as RTMDet tiny and s): the coder multiplies them by the
    stride around the point priors (offset 0).

    Losses over the dynamic soft-label positives, both divided by the sum ``S`` of the
    positives' IoUs with their boxes (the assigner's ``quality``, at least 1): the quality
    focal loss of every prior's logits against ``onehot * IoU`` and ``loss_weight * (1 -
    GIoU)`` of the decoded boxes weighted by the IoU.

    :param num_classes: foreground classes C.
    :param in_channels: channels of every input level before widening.
    :param feat_channels: width of the branches before widening.
    :param widen_factor: multiplies ``in_channels`` and ``feat_channels`` (as the neck's).
    :param stacked_convs: 3x3 convs per branch.
    :param share_conv: share the 3x3 convs across levels (BatchNorms stay per level).
    """

    #: ``loss_cls`` gets ``one_hot * quality`` (:meth:`DenseHead.soft_label_cls_loss`).
    cls_target_forms = ("soft",)

    part_defaults: ClassVar[DenseHeadParts] = {
        "prior_generator": {"type": "PointGenerator", "offset": 0.0},
        "assigner": {"type": "DynamicSoftLabelAssigner"},
        "sampler": {"type": "PseudoSampler"},
        "bbox_coder": {"type": "DistancePointBBoxCoder"},
        "loss_cls": {"type": "QualityFocalLoss"},
        "loss_bbox": {"type": "GIoULoss", "loss_weight": 2.0},
        "postprocess": {"type": "MultiClassNMS", "score_thr": 0.001, "nms_pre": 30000,
                        "iou_threshold": 0.65, "max_per_img": 300},
    }

    def __init__(
        self,
        num_classes: int = 80,
        in_channels: int = 256,
        feat_channels: int = 256,
        widen_factor: float = 1.0,
        stacked_convs: int = 2,
        share_conv: bool = True,
        **parts: Unpack[DenseHeadParts],
    ) -> None:
        super().__init__(num_classes, reg_decoded_bbox=True, **parts)
        if stacked_convs < 1:
            raise ConfigError(f"stacked_convs: expected a positive int, got {stacked_convs}")
        self.require_one_prior_per_cell()
        self.num_levels = len(self.prior_generator.strides)
        self.share_conv = share_conv
        channels = make_divisible(in_channels, widen_factor)
        width = make_divisible(feat_channels, widen_factor)
        num_conv_sets = 1 if share_conv else self.num_levels
        self.cls_convs = nn.ModuleList(self._convs(channels, width, stacked_convs)
                                       for _ in range(num_conv_sets))
        self.reg_convs = nn.ModuleList(self._convs(channels, width, stacked_convs)
                                       for _ in range(num_conv_sets))
        self.cls_norms = nn.ModuleList(self._norms(width, stacked_convs)
                                       for _ in range(self.num_levels))
        self.reg_norms = nn.ModuleList(self._norms(width, stacked_convs)
                                       for _ in range(self.num_levels))
        self.cls_preds = nn.ModuleList(nn.Conv2d(width, num_classes, 1)
                                       for _ in range(self.num_levels))
        self.reg_preds = nn.ModuleList(nn.Conv2d(width, NUM_SIDES, 1)
                                       for _ in range(self.num_levels))
        self._init_weights()

    @staticmethod
    def _convs(in_channels: int, width: int, num: int) -> nn.ModuleList:
        return nn.ModuleList(
            nn.Conv2d(in_channels if i == 0 else width, width, BRANCH_KERNEL,
                      padding=BRANCH_KERNEL // 2, bias=False) for i in range(num))

    @staticmethod
    def _norms(width: int, num: int) -> nn.ModuleList:
        return nn.ModuleList(nn.BatchNorm2d(width, eps=BN_EPS, momentum=BN_MOMENTUM)
                             for _ in range(num))

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=INIT_STD)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for cls_pred in self.cls_preds:
            nn.init.constant_(cls_pred.get_parameter("bias"),
                              -math.log((1 - PRIOR_PROB) / PRIOR_PROB))

    @staticmethod
    def _branch(x: Tensor, convs: nn.Module, norms: nn.Module) -> Tensor:
        # ``convs`` and ``norms`` are ModuleLists (a ModuleList's items are typed Module)
        for conv, norm in zip(cast(nn.ModuleList, convs), cast(nn.ModuleList, norms),
                              strict=True):
            x = F.silu(norm(conv(x)))
        return x

    def forward(self, feats: tuple[Tensor, ...]) -> tuple[list[Tensor], list[Tensor]]:
        """:param feats: per level ``(B, C_in, H_l, W_l)``.
        :returns: per level class logits ``(B, C, H_l, W_l)`` and ltrb distances
            ``(B, 4, H_l, W_l)`` in stride units."""
        if len(feats) != self.num_levels:
            raise ValueError(f"RTMDetHead expects {self.num_levels} levels, got {len(feats)}")
        cls_scores, bbox_preds = [], []
        for level, x in enumerate(feats):
            convs = 0 if self.share_conv else level
            cls_feat = self._branch(x, self.cls_convs[convs], self.cls_norms[level])
            reg_feat = self._branch(x, self.reg_convs[convs], self.reg_norms[level])
            cls_scores.append(self.cls_preds[level](cls_feat))
            bbox_preds.append(self.reg_preds[level](reg_feat))
        return cls_scores, bbox_preds

    def loss_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                     samples: list[DetSample], aux_preds: list[Tensor] | None = None
                     ) -> dict[str, Tensor]:
        """``{"loss_cls", "loss_bbox"}`` and the logged scalars from :meth:`forward`'s
        outputs (see the class doc)."""
        inputs = self.loss_inputs(cls_scores, bbox_preds, samples, aux_preds)
        loss_cls, pos_quality, soft_sum = self.soft_label_cls_loss(inputs)
        loss_bbox = self.box_loss(inputs, weight=pos_quality, avg_factor=soft_sum)
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox, **self.scalars(inputs.targets)}
