"""YOLOX head: a decoupled head per level (class branch; box branch with objectness), point
priors, SimOTA assignment, and YOLOX's losses."""

from __future__ import annotations

import math
from typing import ClassVar, Unpack

from torch import Tensor, nn

from core.api import (
    ConfigError,
    DenseHead,
    DenseHeadParts,
    DetSample,
    LossPart,
    build_part,
    one_hot_without_background,
)
from plugdet_yolo.layers import ConvBNSiLU, make_divisible

FEAT_CHANNELS = 256
BRANCH_KERNEL = 3
BRANCH_CONVS = 2
NUM_BOX_VALUES = 4
#: Initial probability of the class and objectness outputs (bias ``-log((1 - p) / p)``).
PRIOR_PROB = 0.01

DEFAULT_LOSS_OBJ = {"type": "CrossEntropyLoss", "use_sigmoid": True}
DEFAULT_LOSS_L1 = {"type": "L1Loss"}


class YOLOXHead(DenseHead):
    """Per level: a 1x1 stem conv to ``256 * widen`` channels, then a class branch (two 3x3
    conv-BN-SiLU, 1x1 conv to C logits) and a box branch (two 3x3 conv-BN-SiLU, 1x1 convs to
    4 box values and to 1 objectness logit); nothing is shared between levels. Boxes are
    decoded by the coder from the cell corner (``YOLOXBoxCoder``); the point priors are the
    cell centres, which SimOTA assigns with.

    SimOTA ranks with ``sqrt(sigmoid(cls) * sigmoid(obj))`` and decoded boxes. Losses, all
    divided by ``max(num_pos, 1)``: BCE of the positives' class logits against
    ``onehot * IoU`` (the IoU of the positive's decoded box with its gt, the assigner's
    quality), BCE of every prior's objectness against the foreground mask, ``5 * (1 - IoU **
    2)`` of the positives' boxes and, with ``use_l1`` (YOLOX's last 15 epochs, switched on
    by :class:`~plugdet_yolo.hooks.ModeSwitchHook`), the L1 loss of the raw box values
    against the coder's encoding of the gt. Test-time scores are
    ``sigmoid(cls) * sigmoid(obj)``.

    :param num_classes: foreground classes C.
    :param in_channels: channels of each input level before widening.
    :param widen_factor: multiplies ``in_channels`` and ``feat_channels`` (as the neck's).
    :param feat_channels: width of the stem and branches before widening.
    :param loss_obj: the objectness loss.
    :param loss_l1: the L1 loss of the raw box values.
    :param use_l1: add ``loss_l1``.
    """

    #: ``loss_cls`` gets the positives' ``one_hot * IoU``.
    cls_target_forms = ("soft",)
    with_objectness = True

    part_defaults: ClassVar[DenseHeadParts] = {
        "prior_generator": {"type": "PointGenerator"},
        "assigner": {"type": "SimOTAAssigner"},
        "sampler": {"type": "PseudoSampler"},
        "bbox_coder": {"type": "YOLOXBoxCoder"},
        "loss_cls": {"type": "CrossEntropyLoss", "use_sigmoid": True},
        "loss_bbox": {"type": "IoULoss", "mode": "square", "loss_weight": 5.0},
        "postprocess": {"type": "MultiClassNMS", "score_thr": 0.001, "nms_pre": 30000,
                        "iou_threshold": 0.65},
    }

    def __init__(
        self,
        num_classes: int = 80,
        in_channels: tuple[int, ...] = (256, 512, 1024),
        widen_factor: float = 1.0,
        feat_channels: int = FEAT_CHANNELS,
        loss_obj: LossPart = DEFAULT_LOSS_OBJ,
        loss_l1: LossPart = DEFAULT_LOSS_L1,
        use_l1: bool = False,
        **parts: Unpack[DenseHeadParts],
    ) -> None:
        super().__init__(num_classes, reg_decoded_bbox=True, **parts)
        self.require_one_prior_per_cell(in_channels)
        strides = list(self.prior_generator.strides)
        if not self.assigner.uses_predictions:
            raise ConfigError("assigner: YOLOXHead needs an assigner that uses the "
                              "predictions, e.g. SimOTAAssigner")
        if feat_channels < 1:
            raise ConfigError(f"feat_channels: expected a positive int, got {feat_channels}")
        self.loss_obj = build_part("loss", loss_obj, "loss_obj")
        self.loss_l1 = build_part("loss", loss_l1, "loss_l1")
        self.use_l1 = use_l1
        self.in_channels = [make_divisible(c, widen_factor) for c in in_channels]
        width = make_divisible(feat_channels, widen_factor)
        self.stems = nn.ModuleList(ConvBNSiLU(c, width) for c in self.in_channels)
        self.cls_convs = nn.ModuleList(self._branch(width) for _ in strides)
        self.reg_convs = nn.ModuleList(self._branch(width) for _ in strides)
        self.cls_preds = nn.ModuleList(nn.Conv2d(width, num_classes, 1) for _ in strides)
        self.reg_preds = nn.ModuleList(nn.Conv2d(width, NUM_BOX_VALUES, 1) for _ in strides)
        self.obj_preds = nn.ModuleList(nn.Conv2d(width, 1, 1) for _ in strides)
        bias = -math.log((1 - PRIOR_PROB) / PRIOR_PROB)
        for conv in (*self.cls_preds, *self.obj_preds):
            nn.init.constant_(conv.bias, bias)

    @staticmethod
    def _branch(width: int) -> nn.Sequential:
        return nn.Sequential(*(ConvBNSiLU(width, width, BRANCH_KERNEL)
                               for _ in range(BRANCH_CONVS)))

    def forward(self, feats: tuple[Tensor, ...]
                ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """:param feats: per level ``(B, C_l, H_l, W_l)``.
        :returns: per level class logits ``(B, C, H_l, W_l)``, box values
            ``(B, 4, H_l, W_l)`` and objectness logits ``(B, 1, H_l, W_l)``."""
        if len(feats) != len(self.stems):
            raise ValueError(f"YOLOXHead expects {len(self.stems)} levels, got {len(feats)}")
        cls_scores, bbox_preds, objectnesses = [], [], []
        for level, x in enumerate(feats):
            x = self.stems[level](x)
            reg_feat = self.reg_convs[level](x)
            cls_scores.append(self.cls_preds[level](self.cls_convs[level](x)))
            bbox_preds.append(self.reg_preds[level](reg_feat))
            objectnesses.append(self.obj_preds[level](reg_feat))
        return cls_scores, bbox_preds, objectnesses

    def assigner_scores(self, cls: Tensor, obj: Tensor | None) -> Tensor:
        """SimOTA ranks with ``sqrt(sigmoid(cls) * sigmoid(obj))`` ``(B, N, C)``."""
        return super().assigner_scores(cls, obj).sqrt()

    def loss_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                     samples: list[DetSample], aux_preds: list[Tensor] | None = None
                     ) -> dict[str, Tensor]:
        """``{"loss_cls", "loss_bbox", "loss_obj"}`` (and ``"loss_l1"`` with ``use_l1``)
        from :meth:`forward`'s outputs (``aux_preds``: the objectness logits), with the
        logged scalars (see the class doc)."""
        inputs = self.loss_inputs(cls_scores, bbox_preds, samples, aux_preds)
        targets, obj = inputs.targets, inputs.obj
        assert obj is not None  # with_objectness: loss_inputs has refused a missing output
        quality = targets.sampling.assign_result.quality
        if quality is None:
            raise ConfigError("assigner: YOLOXHead needs an assigner with soft targets "
                              "(quality = IoU of each positive), e.g. SimOTAAssigner")
        avg_factor = targets.avg_factor
        pos_cls = inputs.at_positives(inputs.cls)  # (P, C)
        cls_target = one_hot_without_background(inputs.at_positives(targets.labels), pos_cls)
        cls_target = cls_target * inputs.at_positives(quality).to(pos_cls.dtype)[:, None]
        loss_cls = self.loss_cls(pos_cls, cls_target, avg_factor=avg_factor)
        obj_target = targets.sampling.pos_mask.reshape(-1, 1).to(obj.dtype)
        row_weight = targets.row_weight
        loss_obj = self.loss_obj(obj.reshape(-1, 1), obj_target,
                                 weight=None if row_weight is None else row_weight.to(obj.dtype),
                                 avg_factor=avg_factor)
        losses = {"loss_cls": loss_cls, "loss_bbox": self.box_loss(inputs),
                  "loss_obj": loss_obj}
        if self.use_l1:
            encoded = self.bbox_coder.encode(targets.pos_prior_rows(), targets.pos_gt_boxes,
                                             strides=targets.pos_strides())
            losses["loss_l1"] = self.loss_l1(inputs.at_positives(inputs.reg), encoded,
                                             avg_factor=avg_factor)
        return {**losses, **self.scalars(targets)}
