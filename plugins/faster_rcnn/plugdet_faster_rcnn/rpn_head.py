"""Region proposal network head (Ren et al., 2015) on the shared dense-head path."""

from __future__ import annotations

from typing import ClassVar, Unpack

import attrs
import torch
from torch import Tensor, nn

from core.api import (
    NUM_POS_KEY,
    ConfigError,
    DenseHead,
    DenseHeadParts,
    DenseTargets,
    DetSample,
    Instances,
    PostProcessPart,
    Predictions,
    Priors,
    build_part,
)

CONV_KERNEL = 3
INIT_STD = 0.01
#: One objectness logit per anchor; positives are class 0, background is class 1.
NUM_OBJECTNESS = 1
OBJECT_LABEL = 0
#: Loss-dict keys of this stage (they must differ from the RoI head's); the other scalars
#: (assigner statistics) get :data:`KEY_PREFIX`.
LOSS_KEYS = {"loss_cls": "loss_rpn_cls", "loss_bbox": "loss_rpn_bbox",
             NUM_POS_KEY: "rpn_num_pos"}
KEY_PREFIX = "rpn_"

DEFAULT_TRAIN_PROPOSALS = {"type": "ProposalNMS", "nms_pre": 2000, "max_per_img": 2000}


@attrs.frozen
class SampledTargets(DenseTargets):
    """Targets of a randomly sampled dense head: the losses are normalised by the number of
    sampled anchors (positives and negatives), as torchvision and MMDetection do."""

    @property
    def avg_factor(self) -> int:
        """Sampled anchors over the batch (at least 1)."""
        return max(self.num_counted, 1)


class RPNHead(DenseHead):
    """``num_convs`` 3x3 conv + ReLU shared by all levels, then 1x1 convs predicting per
    anchor one class-agnostic objectness logit and ``bbox_coder.encode_size`` box deltas.

    Priors, assign -> sample -> targets, the losses and decode -> select -> NMS are
    :class:`DenseHead`'s; this head labels every positive as "object", normalises by the
    sampled count and returns proposals.

    :param in_channels: channels of each input level.
    :param feat_channels: channels of the shared conv.
    :param postprocess: proposal selection at test time (``predict``).
    :param train_postprocess: proposal selection in training (``loss_and_proposals``).
    :param num_convs: shared 3x3 convs (2 in torchvision's ``fasterrcnn_resnet50_fpn_v2``);
        ``rpn_conv`` is the conv itself for 1, else a Sequential with the convs at even
        indices.
    """

    part_defaults: ClassVar[DenseHeadParts] = {
        "prior_generator": {"type": "AnchorGenerator", "strides": [4, 8, 16, 32, 64],
                            "octave_base_scale": 8.0, "scales_per_octave": 1},
        "assigner": {"type": "MaxIoUAssigner", "pos_iou_thr": 0.7, "neg_iou_thr": 0.3,
                     "min_pos_iou": 0.3},
        "sampler": {"type": "RandomSampler", "num": 256, "pos_fraction": 0.5},
        "bbox_coder": {"type": "DeltaXYWHBBoxCoder"},
        "loss_cls": {"type": "CrossEntropyLoss", "use_sigmoid": True},
        "loss_bbox": {"type": "L1Loss"},
        "postprocess": {"type": "ProposalNMS"},
    }

    def __init__(
        self,
        in_channels: int = 256,
        feat_channels: int = 256,
        train_postprocess: PostProcessPart = DEFAULT_TRAIN_PROPOSALS,
        num_convs: int = 1,
        **parts: Unpack[DenseHeadParts],
    ) -> None:
        super().__init__(NUM_OBJECTNESS, **parts)
        self.train_postprocess = build_part("postprocess", train_postprocess,
                                            "train_postprocess")
        num_priors = set(self.prior_generator.num_base_priors)
        if len(num_priors) != 1:
            raise ConfigError(
                "prior_generator: every level needs the same number of anchors per cell "
                f"(the convs are shared), got {sorted(num_priors)}"
            )
        self.num_base_priors = num_priors.pop()
        if num_convs < 1:
            raise ConfigError(f"num_convs: expected a positive int, got {num_convs}")
        convs = [nn.Conv2d(in_channels if index == 0 else feat_channels, feat_channels,
                           CONV_KERNEL, padding=CONV_KERNEL // 2) for index in range(num_convs)]
        self.rpn_conv: nn.Module = convs[0] if num_convs == 1 else nn.Sequential(
            *[layer for conv in convs for layer in (conv, nn.ReLU(inplace=True))][:-1])
        self.rpn_cls = nn.Conv2d(feat_channels, self.num_base_priors * NUM_OBJECTNESS, 1)
        self.rpn_reg = nn.Conv2d(feat_channels,
                                 self.num_base_priors * self.bbox_coder.encode_size, 1)
        for conv in (*convs, self.rpn_cls, self.rpn_reg):
            nn.init.normal_(conv.weight, std=INIT_STD)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def forward(self, feats: tuple[Tensor, ...]) -> tuple[list[Tensor], list[Tensor]]:
        """:param feats: per level ``(B, in_channels, H_l, W_l)``.
        :returns: objectness logits per level ``(B, A, H_l, W_l)`` and deltas per level
            ``(B, A * encode_size, H_l, W_l)``."""
        objectness, deltas = [], []
        for x in feats:
            hidden = torch.relu(self.rpn_conv(x))
            objectness.append(self.rpn_cls(hidden))
            deltas.append(self.rpn_reg(hidden))
        return objectness, deltas

    def targets(self, priors: Priors, samples: list[DetSample],
                pred: Predictions | None = None) -> SampledTargets:
        """:meth:`DenseHead.targets` with class-agnostic labels (every positive is
        :data:`OBJECT_LABEL`) and the sampled count as the losses' normaliser."""
        dense = super().targets(priors, samples, pred)
        labels = torch.where(dense.sampling.pos_mask, OBJECT_LABEL, NUM_OBJECTNESS)
        fields = attrs.asdict(dense, recurse=False)
        return SampledTargets(**{**fields, "labels": labels})

    def loss_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                     samples: list[DetSample], aux_preds: list[Tensor] | None = None
                     ) -> dict[str, Tensor]:
        """``{"loss_rpn_cls", "loss_rpn_bbox", "rpn_num_pos", "rpn_assign/..."}``."""
        losses = super().loss_by_feat(cls_scores, bbox_preds, samples, aux_preds)
        return {LOSS_KEYS.get(key, KEY_PREFIX + key): value for key, value in losses.items()}

    def loss_and_proposals(self, feats: tuple[Tensor, ...], samples: list[DetSample]
                           ) -> tuple[dict[str, Tensor], list[Instances]]:
        """Losses and per-image training proposals (``train_postprocess``, no gradient).

        :param feats: neck outputs, per level ``(B, C_in, H_l, W_l)``.
        :param samples: with ``gt`` in ``img_shape`` pixels.
        :returns: the loss dict and one ``Instances`` of proposals per image.
        """
        with self.float32_outputs(feats) as (objectness, deltas):
            losses = self.loss_by_feat(objectness, deltas, samples)
            with torch.no_grad():
                proposals = self.predict_by_feat([o.detach() for o in objectness],
                                                 [d.detach() for d in deltas], samples,
                                                 postprocess=self.train_postprocess)
            return losses, proposals

