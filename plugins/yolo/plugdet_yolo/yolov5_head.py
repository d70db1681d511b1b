"""YOLOv5 head: one 1x1 convolution per level predicting, for each of its 3 anchors, a box,
an objectness and the class logits (Jocher et al., ultralytics/yolov5)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import ClassVar, Unpack

import torch
from torch import Tensor, nn
from torchvision.ops import complete_box_iou_loss

from core.api import (
    ConfigError,
    DenseHead,
    DenseHeadParts,
    DenseTargets,
    DetSample,
    LossPart,
    Priors,
    build_part,
    zero_loss,
)
from plugdet_yolo.layers import make_divisible

LOGGER = logging.getLogger("plugdet.models")

#: The anchors (w, h in pixels) of strides 8, 16 and 32 fitted on COCO at 640 pixels.
YOLOV5_ANCHORS = [[[10, 13], [16, 30], [33, 23]],
                  [[30, 61], [62, 45], [59, 119]],
                  [[116, 90], [156, 198], [373, 326]]]
DEFAULT_LOSS_OBJ = {"type": "CrossEntropyLoss", "use_sigmoid": True}
#: Objectness loss weight of each level, finest first (3-level pyramids).
DEFAULT_OBJ_LEVEL_WEIGHTS = (4.0, 1.0, 0.4)
#: The gains are tuned for 3 levels, 80 classes and 640-pixel images and scaled from there.
REFERENCE_LEVELS = 3
REFERENCE_CLASSES = 80
REFERENCE_SCALE = 640
#: Bias initialisation: about 8 objects per 640-pixel image, class probability about 0.6 / C.
OBJECTS_PER_IMAGE = 8
CLASS_PRIOR = 0.6
CLASS_PRIOR_EPS = 0.999999
BOX_CHANNELS = 4
OBJ_CHANNELS = 1


class YOLOv5Head(DenseHead):
    """Per level a 1x1 conv to ``A * (5 + C)`` channels: per anchor ``(tx, ty, tw, th)``
    (see :class:`~plugdet_yolo.yolov5_coder.YOLOv5BoxCoder`), an objectness logit and C class
    logits. Priors, assignment (shape matching) and test-time decode / NMS are
    :class:`DenseHead`'s; the head has objectness (``with_objectness``: the test-time score is
    ``sigmoid(cls) * sigmoid(obj)``) and its own losses.

    Losses (per level, summed over levels, then with ``loss_scale_by_batch`` times the number
    of images as the references do, which the recipe's SGD lr assumes):
    ``1 - CIoU`` of the positives' decoded boxes (mean), objectness BCE over every prior
    against the positives' ``CIoU.detach().clamp(0)`` (mean, times ``obj_level_weights[l]``),
    class BCE of the positives (mean over their C logits) only when ``C > 1``: with one class
    the objectness is the score and the class loss is 0 by design. The weights are
    ``box_gain * 3 / L``, ``cls_gain * C / 80 * 3 / L`` and
    ``obj_gain * (img_scale / 640) ** 2 * 3 / L``; each loss module's ``loss_weight``
    multiplies on top.

    :param num_classes: foreground classes C.
    :param in_channels: channels of each input level before widening (the neck's
        ``out_channels``).
    :param widen_factor: multiplies ``in_channels`` (rounded up to a multiple of 8), as the
        backbone's and neck's.
    :param obj_level_weights: objectness weight per level, finest first.
    :param box_gain: box loss gain before the level scaling.
    :param cls_gain: class loss gain before the class and level scaling.
    :param obj_gain: objectness loss gain before the image-size and level scaling.
    :param img_scale: training image size in pixels (scales the objectness gain).
    :param loss_scale_by_batch: multiply the losses by the number of images.
    """

    #: ``loss_cls`` gets the positives' class labels.
    cls_target_forms = ("labels",)
    with_objectness = True

    part_defaults: ClassVar[DenseHeadParts] = {
        "prior_generator": {"type": "AnchorGenerator", "strides": [8, 16, 32],
                            "base_sizes": YOLOV5_ANCHORS},
        "assigner": {"type": "YOLOv5ShapeMatchAssigner"},
        "sampler": {"type": "PseudoSampler"},
        "bbox_coder": {"type": "YOLOv5BoxCoder"},
        "loss_cls": {"type": "CrossEntropyLoss", "use_sigmoid": True},
        "loss_bbox": {"type": "CIoULoss"},
        "postprocess": {"type": "MultiClassNMS", "score_thr": 0.001, "nms_pre": 30000,
                        "iou_threshold": 0.65, "max_per_img": 300},
    }

    def __init__(
        self,
        num_classes: int = 80,
        in_channels: tuple[int, ...] = (256, 512, 1024),
        widen_factor: float = 1.0,
        loss_obj: LossPart = DEFAULT_LOSS_OBJ,
        obj_level_weights: tuple[float, ...] = DEFAULT_OBJ_LEVEL_WEIGHTS,
        box_gain: float = 0.05,
        cls_gain: float = 0.5,
        obj_gain: float = 1.0,
        img_scale: int = REFERENCE_SCALE,
        loss_scale_by_batch: bool = True,
        **parts: Unpack[DenseHeadParts],
    ) -> None:
        super().__init__(num_classes, reg_decoded_bbox=True, **parts)
        self.loss_obj = build_part("loss", loss_obj, "loss_obj")
        strides = list(self.prior_generator.strides)
        num_levels = len(strides)
        for key, values in (("in_channels", in_channels),
                            ("obj_level_weights", obj_level_weights)):
            if len(values) != num_levels:
                raise ConfigError(f"{key}: expected one value per level ({num_levels}), "
                                  f"got {list(values)}")
        if getattr(self.prior_generator, "center_offset", 0.0) != 0.0:
            raise ConfigError("prior_generator.center_offset: YOLOv5 boxes are decoded from "
                              "the cell corner; set it to 0")
        self.num_base_priors = list(self.prior_generator.num_base_priors)
        self.outputs_per_prior = BOX_CHANNELS + OBJ_CHANNELS + num_classes
        self.in_channels = [make_divisible(c, widen_factor) for c in in_channels]
        self.convs = nn.ModuleList(
            nn.Conv2d(channels, priors * self.outputs_per_prior, kernel_size=1)
            for channels, priors in zip(self.in_channels, self.num_base_priors, strict=True))
        self.obj_level_weights = [float(w) for w in obj_level_weights]
        level_scale = REFERENCE_LEVELS / num_levels
        self.box_weight = box_gain * level_scale
        self.cls_weight = cls_gain * num_classes / REFERENCE_CLASSES * level_scale
        self.obj_weight = obj_gain * (img_scale / REFERENCE_SCALE) ** 2 * level_scale
        self.loss_scale_by_batch = loss_scale_by_batch
        self._init_biases(strides)
        if num_classes == 1:
            LOGGER.info("YOLOv5Head: one class, so the class loss is 0 by design and the "
                        "objectness is the detection score")

    def _init_biases(self, strides: Sequence[int]) -> None:
        """Objectness ``+= log(8 / (640 / s) ** 2)``, classes ``+= log(0.6 / (C - 0.999999))``
        on top of the default initialisation."""
        with torch.no_grad():
            for conv, stride, priors in zip(self.convs, strides, self.num_base_priors,
                                            strict=True):
                bias = conv.get_parameter("bias").view(priors, self.outputs_per_prior)
                bias[:, BOX_CHANNELS] += math.log(
                    OBJECTS_PER_IMAGE / (REFERENCE_SCALE / stride) ** 2)
                bias[:, BOX_CHANNELS + OBJ_CHANNELS:] += math.log(
                    CLASS_PRIOR / (self.num_classes - CLASS_PRIOR_EPS))

    def forward(self, feats: tuple[Tensor, ...]
                ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """:param feats: per level ``(B, in_channels[l], H_l, W_l)``.
        :returns: per level class logits ``(B, A * C, H_l, W_l)``, box logits
            ``(B, A * 4, H_l, W_l)`` and objectness logits ``(B, A, H_l, W_l)``."""
        if len(feats) != len(self.convs):
            raise ValueError(f"YOLOv5Head has {len(self.convs)} levels, got {len(feats)} maps")
        cls_scores, bbox_preds, objectnesses = [], [], []
        for conv, x in zip(self.convs, feats, strict=True):
            out = conv(x)
            batch, _, height, width = out.shape
            out = out.view(batch, -1, self.outputs_per_prior, height, width)
            bbox, obj, cls = out.split([BOX_CHANNELS, OBJ_CHANNELS, self.num_classes], dim=2)
            bbox_preds.append(bbox.reshape(batch, -1, height, width))
            objectnesses.append(obj.reshape(batch, -1, height, width))
            cls_scores.append(cls.reshape(batch, -1, height, width))
        return cls_scores, bbox_preds, objectnesses

    # ---- training ----------------------------------------------------------------------

    def loss_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                     samples: list[DetSample], aux_preds: list[Tensor] | None = None
                     ) -> dict[str, Tensor]:
        """``{"loss_bbox", "loss_obj", "loss_cls"}`` and the logged scalars from the raw
        outputs (``aux_preds``: the objectness logits)."""
        inputs = self.loss_inputs(cls_scores, bbox_preds, samples, aux_preds)
        targets, boxes = inputs.targets, inputs.pos_boxes
        assert inputs.obj is not None and boxes is not None  # with_objectness, decoded boxes
        obj = inputs.obj[..., 0]  # (B, N)
        pos_level = inputs.priors.level_of()[targets.pos_prior]  # (P,)
        obj_target = self.objectness_targets(obj, boxes, targets)
        loss_obj = self.objectness_loss(inputs.priors, obj, obj_target, targets.row_weight)
        loss_bbox, loss_cls = self.positive_losses(inputs.cls, boxes, pos_level, targets)
        batch = len(samples) if self.loss_scale_by_batch else 1
        return {"loss_bbox": loss_bbox * self.box_weight * batch,
                "loss_obj": loss_obj * self.obj_weight * batch,
                "loss_cls": loss_cls * self.cls_weight * batch, **self.scalars(targets)}

    def objectness_loss(self, priors: Priors, obj: Tensor, target: Tensor,
                        row_weight: Tensor | None) -> Tensor:
        """``sum_l obj_level_weights[l] * mean BCE`` over level ``l``'s priors.

        :param obj: ``(B, N)`` logits. :param target: ``(B, N)`` soft targets.
        :param row_weight: ``(B * N,)`` 0 for ignored priors, or None."""
        weight = (torch.ones_like(obj) if row_weight is None
                  else row_weight.view_as(obj).to(obj.dtype))
        total = zero_loss(obj)
        for level_weight, logits, level_target, level_rows in zip(
                self.obj_level_weights, priors.split_levels(obj, dim=1),
                priors.split_levels(target, dim=1), priors.split_levels(weight, dim=1),
                strict=True):
            total = total + level_weight * self.loss_obj(
                logits.reshape(-1, 1), level_target.reshape(-1, 1), weight=level_rows.reshape(-1))
        return total

    def positive_losses(self, cls: Tensor, boxes: Tensor, pos_level: Tensor,
                        targets: DenseTargets) -> tuple[Tensor, Tensor]:
        """Summed over levels: the mean box loss of a level's positives and, with more than
        one class, the mean class BCE of their ``C`` logits.

        :param cls: ``(B, N, C)`` logits. :param boxes: ``(P, 4)`` decoded positives.
        :param pos_level: ``(P,)`` level of each positive."""
        pos_cls = cls[targets.pos_image, targets.pos_prior]
        pos_labels = targets.labels[targets.pos_image, targets.pos_prior]
        loss_bbox, loss_cls = zero_loss(boxes), zero_loss(pos_cls)
        for level in range(len(self.convs)):
            at_level = pos_level == level
            if not bool(at_level.any()):
                continue
            loss_bbox = loss_bbox + self.loss_bbox(boxes[at_level],
                                                   targets.pos_gt_boxes[at_level])
            if self.num_classes > 1:
                loss_cls = loss_cls + self.loss_cls(pos_cls[at_level], pos_labels[at_level])
        return loss_bbox, loss_cls

    @staticmethod
    def objectness_targets(obj: Tensor, pos_boxes: Tensor, targets: DenseTargets) -> Tensor:
        """``(B, N)`` objectness targets: ``CIoU(decoded box, gt).clamp(0)`` (no gradient)
        at the positives, 0 elsewhere.

        :param obj: ``(B, N)`` objectness logits (shape and dtype).
        :param pos_boxes: ``(P, 4)`` decoded boxes of the positives."""
        target = torch.zeros_like(obj)
        with torch.no_grad():
            ciou = 1 - complete_box_iou_loss(pos_boxes.detach(), targets.pos_gt_boxes,
                                             reduction="none")
        target[targets.pos_image, targets.pos_prior] = ciou.clamp(min=0).to(obj.dtype)
        return target
