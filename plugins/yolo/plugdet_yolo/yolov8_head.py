"""YOLOv8 head: decoupled class and box branches per level, box sides regressed as
distributions over ``reg_max`` bins (distribution focal loss), task-aligned assignment."""

from __future__ import annotations

import math
from typing import ClassVar, Unpack, cast

import torch
from torch import Tensor, nn

from core.api import (
    ConfigError,
    DenseHead,
    DenseHeadParts,
    DenseLossInputs,
    DetSample,
    LossPart,
    build_part,
    flatten_levels,
)
from plugdet_yolo.layers import ConvBNSiLU, make_divisible

BRANCH_KERNEL = 3
BRANCH_CONVS = 2
NUM_SIDES = 4
#: Distance targets stay this far below the last bin (both bins of the DFL exist).
DFL_TARGET_MARGIN = 0.01
#: Bias init of the class predictor: 5 objects per 640 x 640 image spread over the classes.
PRIOR_OBJECTS = 5.0
PRIOR_IMAGE_SIZE = 640.0
BOX_BIAS = 1.0
#: Class-branch width is at least ``min(num_classes, CLS_WIDTH_CAP)``.
CLS_WIDTH_CAP = 100
MIN_REG_WIDTH = 16

DEFAULT_LOSS_DFL = {"type": "DistributionFocalLoss", "loss_weight": 1.5}


class YOLOv8Head(DenseHead):
    """Per level, a class branch (two 3x3 conv-BN-SiLU, 1x1 conv to C logits) and a box
    branch (two 3x3 conv-BN-SiLU, 1x1 conv to ``4 * reg_max`` logits); nothing is shared
    between levels. Each box side is a softmax over ``reg_max`` bins whose expectation is the
    distance from the prior point in stride units (the integral lives here, the coder maps
    distances to boxes).

    Losses over the task-aligned positives, all divided by the sum ``S`` of their soft
    targets (at least 1): sigmoid cross-entropy of every prior against ``onehot * soft
    target`` (gain 0.5), ``(1 - CIoU)`` weighted by the soft target (gain 7.5) and the
    distribution focal loss of the four sides to their distances clamped to
    ``[0, reg_max - 1 - 0.01]``, averaged over the sides and weighted by the soft target
    (gain 1.5). With ``loss_scale_by_batch`` all three are multiplied by the number of
    images of the batch (of this process, as ultralytics does; the recipe's SGD lr of 0.01
    assumes the scaling).

    :param num_classes: foreground classes C.
    :param in_channels: channels of each input level before widening.
    :param widen_factor: multiplies ``in_channels`` (as the neck's).
    :param reg_max: bins per box side.
    :param loss_dfl: the distribution loss of the box sides.
    :param loss_scale_by_batch: multiply the losses by the number of images.
    :param cls_feat_channels: width of the class branches' 3x3 convs; None:
        ``max(in_channels[0] * widen, min(num_classes, 100))`` (ultralytics' rule, MMYOLO's
        up to 100 classes: 80 for n with COCO's 80 classes). Set to a checkpoint's width, a
        fine-tuning on other classes starts from its whole class branch.
    """

    #: ``loss_cls`` gets ``one_hot * quality`` (:meth:`DenseHead.soft_label_cls_loss`).
    cls_target_forms = ("soft",)

    part_defaults: ClassVar[DenseHeadParts] = {
        "prior_generator": {"type": "PointGenerator"},
        "assigner": {"type": "TaskAlignedAssigner"},
        "sampler": {"type": "PseudoSampler"},
        "bbox_coder": {"type": "DistancePointBBoxCoder"},
        "loss_cls": {"type": "CrossEntropyLoss", "use_sigmoid": True, "loss_weight": 0.5},
        "loss_bbox": {"type": "CIoULoss", "loss_weight": 7.5},
        "postprocess": {"type": "MultiClassNMS", "score_thr": 0.001, "nms_pre": 30000,
                        "iou_threshold": 0.7, "max_per_img": 300},
    }

    def __init__(
        self,
        num_classes: int = 80,
        in_channels: tuple[int, ...] = (256, 512, 1024),
        widen_factor: float = 1.0,
        reg_max: int = 16,
        loss_dfl: LossPart = DEFAULT_LOSS_DFL,
        loss_scale_by_batch: bool = True,
        cls_feat_channels: int | None = None,
        **parts: Unpack[DenseHeadParts],
    ) -> None:
        super().__init__(num_classes, reg_decoded_bbox=True, **parts)
        if reg_max < 2:
            raise ConfigError(f"reg_max: expected an int >= 2, got {reg_max}")
        if cls_feat_channels is not None and cls_feat_channels < 1:
            raise ConfigError(f"cls_feat_channels: expected a positive int or None, got "
                              f"{cls_feat_channels}")
        self.require_one_prior_per_cell(in_channels)
        strides = list(self.prior_generator.strides)
        self.loss_dfl = build_part("loss", loss_dfl, "loss_dfl")
        self.reg_max = reg_max
        self.loss_scale_by_batch = loss_scale_by_batch
        channels = [make_divisible(c, widen_factor) for c in in_channels]
        reg_width = max(MIN_REG_WIDTH, channels[0] // 4, NUM_SIDES * reg_max)
        cls_width = (max(channels[0], min(num_classes, CLS_WIDTH_CAP))
                     if cls_feat_channels is None else cls_feat_channels)
        self.cls_branches = nn.ModuleList(self._branch(c, cls_width, num_classes)
                                          for c in channels)
        self.reg_branches = nn.ModuleList(self._branch(c, reg_width, NUM_SIDES * reg_max)
                                          for c in channels)
        self.register_buffer("bins", torch.arange(reg_max, dtype=torch.float32),
                             persistent=False)
        self._init_biases(strides)

    @staticmethod
    def _branch(in_channels: int, width: int, outputs: int) -> nn.Sequential:
        convs = [ConvBNSiLU(in_channels if i == 0 else width, width, BRANCH_KERNEL)
                 for i in range(BRANCH_CONVS)]
        return nn.Sequential(*convs, nn.Conv2d(width, outputs, 1))

    def _init_biases(self, strides: list[int]) -> None:
        for cls_branch, reg_branch, stride in zip(self.cls_branches, self.reg_branches, strides,
                                                  strict=True):
            prior = PRIOR_OBJECTS / self.num_classes / (PRIOR_IMAGE_SIZE / stride) ** 2
            cls_pred = cast(nn.Sequential, cls_branch)[-1]  # ModuleList items are typed Module
            reg_pred = cast(nn.Sequential, reg_branch)[-1]
            nn.init.constant_(cls_pred.get_parameter("bias"), math.log(prior))
            nn.init.constant_(reg_pred.get_parameter("bias"), BOX_BIAS)

    def integral(self, dist_logits: Tensor) -> Tensor:
        """Expected distances of the bin distributions:
        ``(B, 4 * reg_max, H, W)`` side-major logits -> ``(B, 4, H, W)`` in stride units."""
        num_images, _, height, width = dist_logits.shape
        probs = dist_logits.view(num_images, NUM_SIDES, self.reg_max, height, width).softmax(2)
        return torch.einsum("bsrhw,r->bshw", probs, self.bins.to(probs.dtype))

    def forward(self, feats: tuple[Tensor, ...]
                ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """:param feats: per level ``(B, C_l, H_l, W_l)``.
        :returns: per level class logits ``(B, C, H_l, W_l)``, distances ``(B, 4, H_l, W_l)``
            (stride units) and bin logits ``(B, 4 * reg_max, H_l, W_l)``."""
        if len(feats) != len(self.cls_branches):
            raise ValueError(f"YOLOv8Head expects {len(self.cls_branches)} levels, "
                             f"got {len(feats)}")
        cls_scores = [branch(x) for branch, x in zip(self.cls_branches, feats, strict=True)]
        dist_logits = [branch(x) for branch, x in zip(self.reg_branches, feats, strict=True)]
        return cls_scores, [self.integral(d) for d in dist_logits], dist_logits

    def loss_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                     samples: list[DetSample], aux_preds: list[Tensor] | None = None
                     ) -> dict[str, Tensor]:
        """``{"loss_cls", "loss_bbox", "loss_dfl"}`` and the logged scalars from
        :meth:`forward`'s outputs (``aux_preds``: the bin logits; see the class doc)."""
        if aux_preds is None:
            raise ValueError("YOLOv8Head: loss_by_feat needs forward's bin logits (aux_preds)")
        inputs = self.loss_inputs(cls_scores, bbox_preds, samples, aux_preds)
        return self.detection_losses(inputs, aux_preds, len(samples))

    def detection_losses(self, inputs: DenseLossInputs, bin_logits: list[Tensor],
                         num_images: int) -> dict[str, Tensor]:
        """The three losses and the logged scalars of :meth:`loss_by_feat` from its
        :meth:`loss_inputs` (a head that adds losses reuses the assignment).

        :param bin_logits: per level ``(B, 4 * reg_max, H_l, W_l)``.
        :param num_images: B, the factor of ``loss_scale_by_batch``."""
        targets = inputs.targets
        loss_cls, pos_quality, soft_sum = self.soft_label_cls_loss(inputs)
        loss_bbox = self.box_loss(inputs, weight=pos_quality, avg_factor=soft_sum)
        distances = self.bbox_coder.encode(targets.pos_prior_rows(), targets.pos_gt_boxes,
                                           strides=targets.pos_strides())
        distances = distances.clamp(min=0.0, max=self.reg_max - 1 - DFL_TARGET_MARGIN)
        bins = flatten_levels(bin_logits, NUM_SIDES * self.reg_max)
        pos_bins = inputs.at_positives(bins).reshape(-1, self.reg_max)
        loss_dfl = self.loss_dfl(pos_bins, distances.reshape(-1),
                                 weight=pos_quality.repeat_interleave(NUM_SIDES),
                                 avg_factor=NUM_SIDES * soft_sum)
        scale = float(num_images) if self.loss_scale_by_batch else 1.0
        return {"loss_cls": loss_cls * scale, "loss_bbox": loss_bbox * scale,
                "loss_dfl": loss_dfl * scale, **self.scalars(targets)}
