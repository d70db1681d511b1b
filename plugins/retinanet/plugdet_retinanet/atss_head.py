"""ATSS head (Zhang et al., CVPR 2020) as MMDetection builds it: RetinaNet's subnets with
GroupNorm, one anchor per cell, a centerness branch and a learnable scale per level."""

from __future__ import annotations

from typing import ClassVar, Unpack

import attrs
import torch
from torch import Tensor, nn

from core.api import (
    DenseHeadParts,
    DetSample,
    Instances,
    LossPart,
    PostProcess,
    build_part,
    flatten_level,
    flatten_levels,
    zero_loss,
)
from plugdet_retinanet.retina_head import (
    CLS_WEIGHT_STD,
    CONV_KERNEL,
    HeadNorm,
    LargeBoxes,
    RetinaHead,
)

DEFAULT_LOSS_CENTERNESS = {"type": "CrossEntropyLoss", "use_sigmoid": True}
#: One centerness logit per prior.
CENTERNESS_CHANNELS = 1


class Scale(nn.Module):
    """Multiplies its input by a learnable scalar (``scale``, initially 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x: Tensor) -> Tensor:
        """``x * scale``, any shape."""
        return x * self.scale


def centerness_targets(anchors: Tensor, gt_boxes: Tensor) -> Tensor:
    """``(P,)`` centerness of each anchor centre in its gt box:
    ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))`` of the distances to the sides.

    :param anchors: ``(P, 4)`` xyxy anchors (their centres lie inside the boxes).
    :param gt_boxes: ``(P, 4)`` xyxy gt boxes."""
    centers = (anchors[:, :2] + anchors[:, 2:]) / 2
    left_top = centers - gt_boxes[:, :2]
    right_bottom = gt_boxes[:, 2:] - centers
    ratio = (torch.minimum(left_top, right_bottom) / torch.maximum(left_top, right_bottom))
    return torch.sqrt(ratio[:, 0] * ratio[:, 1])


class ATSSHead(RetinaHead):
    """RetinaNet's two subnets (GroupNorm by default) with a third output: per prior a
    centerness logit from the box subnet; the box values of level ``l`` are multiplied by a
    learnable scalar ``scales[l]``. Training (MMDetection's ATSS): focal loss over all
    priors / positives, a GIoU loss of the decoded positives weighted by their centerness
    targets (normalised by the targets' sum) and a sigmoid cross-entropy between the
    centerness logits and targets / positives. Test: the ``nms_pre`` best class scores per
    level above ``score_thr`` (class probability alone), their scores multiplied by the
    centerness probability, then NMS.

    :param num_classes: foreground classes C.
    :param in_channels: channels of each input level.
    :param feat_channels: channels of the subnet convs.
    :param stacked_convs: convs per subnet before the predictors.
    :param loss_centerness: loss of the centerness logits against soft targets in [0, 1].
    :param prior_prob: initial foreground probability (bias of the class predictor).
    :param norm: the subnets' norm (see :class:`RetinaHead`).
    :param min_bbox_size: boxes (clipped to the image) whose width or height is not above it
        are dropped before NMS; None keeps all (see :class:`RetinaHead`).
    """

    part_defaults: ClassVar[DenseHeadParts] = {
        **RetinaHead.part_defaults,
        "prior_generator": {"type": "AnchorGenerator", "octave_base_scale": 8.0,
                            "scales_per_octave": 1, "ratios": [1.0]},
        "assigner": {"type": "ATSSAssigner"},
        "bbox_coder": {"type": "DeltaXYWHBBoxCoder", "target_stds": [0.1, 0.1, 0.2, 0.2]},
        "loss_bbox": {"type": "GIoULoss", "loss_weight": 2.0},
        "postprocess": {"type": "MultiClassNMS", "iou_threshold": 0.6},
    }

    def __init__(
        self,
        num_classes: int = 80,
        in_channels: int = 256,
        feat_channels: int = 256,
        stacked_convs: int = 4,
        loss_centerness: LossPart = DEFAULT_LOSS_CENTERNESS,
        prior_prob: float = 0.01,
        norm: HeadNorm | None = "GN",
        min_bbox_size: float | None = 0.0,
        **parts: Unpack[DenseHeadParts],
    ) -> None:
        super().__init__(num_classes, in_channels, feat_channels, stacked_convs, prior_prob,
                         reg_decoded_bbox=True, norm=norm, min_bbox_size=min_bbox_size, **parts)
        self.loss_centerness = build_part("loss", loss_centerness, "loss_centerness")
        self.atss_centerness = nn.Conv2d(feat_channels,
                                         self.num_base_priors * CENTERNESS_CHANNELS,
                                         CONV_KERNEL, padding=CONV_KERNEL // 2)
        nn.init.normal_(self.atss_centerness.weight, std=CLS_WEIGHT_STD)
        nn.init.zeros_(self.atss_centerness.get_parameter("bias"))
        self.scales = nn.ModuleList(Scale() for _ in self.prior_generator.strides)

    # a third output (DenseHead's aux_preds) next to RetinaHead's two
    def forward(self, feats: tuple[Tensor, ...]  # type: ignore[override]
                ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """:param feats: per level ``(B, in_channels, H_l, W_l)``.
        :returns: per level class logits ``(B, A * C, H_l, W_l)``, scaled box values
            ``(B, A * encode_size, H_l, W_l)`` and centerness logits ``(B, A, H_l, W_l)``."""
        if len(feats) != len(self.scales):
            raise ValueError(f"ATSSHead expects {len(self.scales)} levels, got {len(feats)}")
        cls_scores, bbox_preds, centerness = [], [], []
        for x, scale in zip(feats, self.scales, strict=True):
            reg_feat = self.reg_convs(x)
            cls_scores.append(self.retina_cls(self.cls_convs(x)))
            bbox_preds.append(scale(self.retina_reg(reg_feat)))
            centerness.append(self.atss_centerness(reg_feat))
        return cls_scores, bbox_preds, centerness

    def loss_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                     samples: list[DetSample], aux_preds: list[Tensor] | None = None
                     ) -> dict[str, Tensor]:
        """``{"loss_cls", "loss_bbox", "loss_centerness"}`` and the logged scalars from
        :meth:`forward`'s outputs (``aux_preds``: the centerness logits)."""
        if aux_preds is None:
            raise ValueError("ATSSHead: loss_by_feat needs forward's centerness logits "
                             "(aux_preds)")
        inputs = self.loss_inputs(cls_scores, bbox_preds, samples)
        targets = inputs.targets
        pos_centerness = inputs.at_positives(flatten_levels(aux_preds, CENTERNESS_CHANNELS))
        losses = {"loss_cls": self.cls_loss(inputs), **self.scalars(targets)}
        if targets.num_pos == 0 or inputs.pos_boxes is None:
            return {**losses, "loss_bbox": zero_loss(inputs.reg),
                    "loss_centerness": zero_loss(pos_centerness)}
        goal = centerness_targets(targets.pos_prior_rows(), targets.pos_gt_boxes)
        loss_bbox = self.box_loss(inputs, weight=goal, avg_factor=goal.sum().clamp(min=1.0))
        loss_centerness = self.loss_centerness(pos_centerness, goal[:, None],
                                               avg_factor=targets.avg_factor)
        return {**losses, "loss_bbox": loss_bbox, "loss_centerness": loss_centerness}

    def predict_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                        samples: list[DetSample], aux_preds: list[Tensor] | None = None,
                        postprocess: PostProcess | None = None) -> list[Instances]:
        """Candidates by class probability, scores times the centerness probability,
        decoded boxes, small boxes dropped (``min_bbox_size``), NMS.

        :param aux_preds: the centerness logits, per level ``(B, A, H_l, W_l)``.
        :param postprocess: the selection and NMS to use instead of ``self.postprocess``."""
        if aux_preds is None:
            raise ValueError("ATSSHead: predict_by_feat needs forward's centerness logits "
                             "(aux_preds)")
        postprocess = self.postprocess if postprocess is None else postprocess
        if self.min_bbox_size is not None:
            postprocess = LargeBoxes(postprocess, self.min_bbox_size)
        priors = self.priors_of(cls_scores)
        candidates = postprocess.select(
            [flatten_level(c, self.num_classes).sigmoid() for c in cls_scores])
        index = candidates.prior_inds
        centerness = flatten_levels(aux_preds, CENTERNESS_CHANNELS)[..., 0].sigmoid()
        candidates = attrs.evolve(candidates,
                                  scores=candidates.scores * centerness.gather(1, index))
        reg = flatten_levels(bbox_preds, self.bbox_coder.encode_size)
        values = reg.gather(1, index[:, :, None].expand(-1, -1, reg.shape[-1]))
        img_shapes = torch.tensor([s.img_shape for s in samples], device=reg.device)
        boxes = self.decode(priors, values, index, max_shape=img_shapes[:, None, :])
        return postprocess(boxes, candidates)
