"""RetinaNet head: shared class and box subnets on every pyramid level (Lin et al., 2017)."""

from __future__ import annotations

import math
from typing import Annotated, Any

import attrs
import torch
from torch import Tensor, nn

from core.engine.message_hub import MessageHub
from core.errors import ConfigError
from core.models.build import build_part
from core.models.gt_batch import GTBatch
from core.models.postprocess import MultiClassNMS
from core.models.samplers import SampleResult
from core.registry import component
from core.structures import DetSample, Instances

CONV_KERNEL = 3
NUM_BOX_PARAMS = 4
NUM_POS_KEY = "train/num_pos"
CLS_WEIGHT_STD = 0.01
DEFAULT_PRIOR_GENERATOR = {
    "type": "AnchorGenerator",
    "octave_base_scale": 4.0,
    "scales_per_octave": 3,
    "ratios": [0.5, 1.0, 2.0],
    "strides": [8, 16, 32, 64, 128],
}
DEFAULT_ASSIGNER = {
    "type": "MaxIoUAssigner",
    "pos_iou_thr": 0.5,
    "neg_iou_thr": 0.4,
    "min_pos_iou": 0.0,
    "ignore_iof_thr": -1.0,
}
DEFAULT_SAMPLER = {"type": "PseudoSampler"}
DEFAULT_CODER = {"type": "DeltaXYWHBBoxCoder"}
DEFAULT_LOSS_CLS = {"type": "FocalLoss", "gamma": 2.0, "alpha": 0.25, "loss_weight": 1.0}
DEFAULT_LOSS_BBOX = {"type": "L1Loss", "loss_weight": 1.0}


def flatten_level(pred: Tensor, channels: int) -> Tensor:
    """``(B, A * channels, H, W)`` -> ``(B, H * W * A, channels)`` (cell-major, anchor inner),
    the prior order of :class:`~core.models.priors.AnchorGenerator`."""
    num_images, _, height, width = pred.shape
    pred = pred.view(num_images, -1, channels, height, width).permute(0, 3, 4, 1, 2)
    return pred.reshape(num_images, -1, channels)


@attrs.frozen
class Assignments:
    """Which priors are positive for each image, per pyramid level (for visualisation).

    :ivar priors: per level ``(N_l, 4)`` xyxy priors.
    :ivar pos_inds: ``pos_inds[i][l]``: ``(P,)`` int64 indices into ``priors[l]`` of the
        positives of image ``i``.
    :ivar pos_gt_inds: ``pos_gt_inds[i][l]``: ``(P,)`` int64 index of the gt box (in
        ``samples[i].gt``) each of those positives is matched to.
    :ivar sample_result: the batched result, ``(B, N)`` masks over all levels.
    """

    priors: list[Tensor]
    pos_inds: list[list[Tensor]]
    pos_gt_inds: list[list[Tensor]]
    sample_result: SampleResult


class RetinaHead(nn.Module):
    """Two subnets of ``stacked_convs`` 3x3 conv + ReLU, shared across levels, predicting per
    prior C class logits and 4 box deltas.

    Training: prior generator -> assigner -> sampler -> coder (targets) -> losses; testing:
    scores -> top-k -> coder (decode) -> class-wise NMS. Each stage is its own component.

    :param num_classes: foreground classes C (no background logit; sigmoid per class).
    :param in_channels: channels of each input level.
    :param feat_channels: channels of the subnet convs.
    :param stacked_convs: convs per subnet before the predictor.
    :param prior_prob: initial foreground probability (bias of the class predictor).
    :param reg_decoded_bbox: compute ``loss_bbox`` on decoded boxes (IoU-type losses) instead
        of on encoded deltas.
    :param score_thr: test-time score threshold.
    :param nms_pre: test-time candidates per level before NMS.
    :param iou_threshold: test-time NMS IoU threshold.
    :param max_per_img: test-time detections per image.
    """

    def __init__(
        self,
        num_classes: int = 80,
        in_channels: int = 256,
        feat_channels: int = 256,
        stacked_convs: int = 4,
        prior_generator: Annotated[Any, component("prior_generator")] = DEFAULT_PRIOR_GENERATOR,
        assigner: Annotated[Any, component("assigner")] = DEFAULT_ASSIGNER,
        sampler: Annotated[Any, component("sampler")] = DEFAULT_SAMPLER,
        bbox_coder: Annotated[Any, component("coder")] = DEFAULT_CODER,
        loss_cls: Annotated[nn.Module, component("loss")] = DEFAULT_LOSS_CLS,
        loss_bbox: Annotated[nn.Module, component("loss")] = DEFAULT_LOSS_BBOX,
        prior_prob: float = 0.01,
        reg_decoded_bbox: bool = False,
        score_thr: float = 0.05,
        nms_pre: int = 1000,
        iou_threshold: float = 0.5,
        max_per_img: int = 100,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"num_classes: expected a positive int, got {num_classes}")
        if not 0 < prior_prob < 1:
            raise ConfigError(f"prior_prob: expected a value in (0, 1), got {prior_prob}")
        self.num_classes = num_classes
        self.prior_generator = build_part(
            "prior_generator", prior_generator, "head.prior_generator"
        )
        self.assigner = build_part("assigner", assigner, "head.assigner")
        self.sampler = build_part("sampler", sampler, "head.sampler")
        self.bbox_coder = build_part("coder", bbox_coder, "head.bbox_coder")
        self.loss_cls = build_part("loss", loss_cls, "head.loss_cls")
        self.loss_bbox = build_part("loss", loss_bbox, "head.loss_bbox")
        if getattr(self.sampler, "add_gt_as_proposals", False):
            raise ConfigError(
                "head.sampler.add_gt_as_proposals: a dense head predicts only for "
                "its priors; set it to false"
            )
        num_priors = set(self.prior_generator.num_base_priors)
        if len(num_priors) != 1:
            raise ConfigError(
                "head.prior_generator: every level needs the same number of priors "
                f"per cell (the subnets are shared), got {sorted(num_priors)}"
            )
        self.num_base_priors = num_priors.pop()
        self.reg_decoded_bbox = reg_decoded_bbox
        self.postprocess = MultiClassNMS(score_thr, nms_pre, iou_threshold, max_per_img)
        self.cls_convs = self._subnet(in_channels, feat_channels, stacked_convs)
        self.reg_convs = self._subnet(in_channels, feat_channels, stacked_convs)
        self.retina_cls = nn.Conv2d(
            feat_channels, self.num_base_priors * num_classes, CONV_KERNEL, padding=CONV_KERNEL // 2
        )
        self.retina_reg = nn.Conv2d(
            feat_channels,
            self.num_base_priors * NUM_BOX_PARAMS,
            CONV_KERNEL,
            padding=CONV_KERNEL // 2,
        )
        self._init_weights(prior_prob)

    @staticmethod
    def _subnet(in_channels: int, feat_channels: int, num_convs: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for index in range(num_convs):
            channels = in_channels if index == 0 else feat_channels
            layers += [
                nn.Conv2d(channels, feat_channels, CONV_KERNEL, padding=CONV_KERNEL // 2),
                nn.ReLU(inplace=True),
            ]
        return nn.Sequential(*layers)

    def _init_weights(self, prior_prob: float) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=CLS_WEIGHT_STD)
                nn.init.zeros_(m.bias)
        nn.init.constant_(self.retina_cls.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, feats: tuple[Tensor, ...]) -> tuple[list[Tensor], list[Tensor]]:
        """:param feats: per level ``(B, in_channels, H_l, W_l)``.
        :returns: class logits per level ``(B, A * C, H_l, W_l)`` and box deltas per level
            ``(B, A * 4, H_l, W_l)``."""
        cls_scores, bbox_preds = [], []
        for x in feats:
            cls_scores.append(self.retina_cls(self.cls_convs(x)))
            bbox_preds.append(self.retina_reg(self.reg_convs(x)))
        return cls_scores, bbox_preds

    def priors_for(
        self, featmap_sizes: list[tuple[int, int]], device: torch.device | str
    ) -> list[Tensor]:
        """Per level ``(H_l * W_l * A, 4)`` priors (cached; do not modify in place)."""
        return self.prior_generator.grid_priors(featmap_sizes, device)

    def _sample(self, priors: Tensor, samples: list[DetSample]) -> tuple[SampleResult, GTBatch]:
        gt = GTBatch.from_samples(samples, priors.device)
        assign_result = self.assigner.assign(priors, gt)
        return self.sampler.sample(assign_result, priors, gt), gt

    def loss(self, feats: tuple[Tensor, ...], samples: list[DetSample]) -> dict[str, Tensor]:
        """Losses of a batch. :param feats: neck outputs. :param samples: with ``gt`` in
        ``img_shape`` coordinates. :returns: ``{"loss_cls": scalar, "loss_bbox": scalar}``."""
        cls_scores, bbox_preds = self(feats)
        return self.loss_by_feat(cls_scores, bbox_preds, samples)

    def loss_by_feat(
        self, cls_scores: list[Tensor], bbox_preds: list[Tensor], samples: list[DetSample]
    ) -> dict[str, Tensor]:
        """Losses from raw head outputs (shapes as returned by :meth:`forward`)."""
        device = cls_scores[0].device
        featmap_sizes = [tuple(c.shape[-2:]) for c in cls_scores]
        priors = torch.cat(self.priors_for(featmap_sizes, device))
        sampling, gt = self._sample(priors, samples)
        cls = torch.cat([flatten_level(c, self.num_classes) for c in cls_scores], dim=1)
        reg = torch.cat([flatten_level(b, NUM_BOX_PARAMS) for b in bbox_preds], dim=1)
        assign_result = sampling.assign_result
        num_pos = sampling.num_pos
        MessageHub.get_current_instance().update_scalar(NUM_POS_KEY, num_pos)
        avg_factor = max(num_pos, 1)

        counted = sampling.pos_mask | sampling.neg_mask  # (B, N)
        labels = torch.where(
            sampling.pos_mask,
            assign_result.labels,
            torch.full_like(assign_result.labels, self.num_classes),
        )
        # Ignored priors get weight 0 (no gathered copy of the (B * N, C) logits).
        row_weight = None if bool(counted.all()) else counted.reshape(-1).to(cls.dtype)
        loss_cls = self.loss_cls(
            cls.reshape(-1, self.num_classes),
            labels.reshape(-1),
            weight=row_weight,
            avg_factor=avg_factor,
        )

        image_idx, prior_idx = sampling.pos_mask.nonzero(as_tuple=True)
        matched_gt = gt.boxes[image_idx, assign_result.gt_inds[image_idx, prior_idx] - 1]
        pos_priors = priors[prior_idx]
        pos_deltas = reg[image_idx, prior_idx]
        if self.reg_decoded_bbox:
            loss_bbox = self.loss_bbox(
                self.bbox_coder.decode(pos_priors, pos_deltas), matched_gt, avg_factor=avg_factor
            )
        else:
            targets = self.bbox_coder.encode(pos_priors, matched_gt)
            loss_bbox = self.loss_bbox(pos_deltas, targets, avg_factor=avg_factor)
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox}

    def predict(self, feats: tuple[Tensor, ...], samples: list[DetSample]) -> list[Instances]:
        """Detections per image in ``img_shape`` coordinates (boxes clipped to it)."""
        cls_scores, bbox_preds = self(feats)
        return self.predict_by_feat(cls_scores, bbox_preds, samples)

    def predict_by_feat(
        self, cls_scores: list[Tensor], bbox_preds: list[Tensor], samples: list[DetSample]
    ) -> list[Instances]:
        """Detections from raw head outputs (shapes as returned by :meth:`forward`)."""
        device = cls_scores[0].device
        featmap_sizes = [tuple(c.shape[-2:]) for c in cls_scores]
        priors = torch.cat(self.priors_for(featmap_sizes, device))
        level_scores = [flatten_level(c, self.num_classes).sigmoid() for c in cls_scores]
        candidates = self.postprocess.select(level_scores)
        reg = torch.cat([flatten_level(b, NUM_BOX_PARAMS) for b in bbox_preds], dim=1)
        index = candidates.prior_inds
        deltas = reg.gather(1, index[:, :, None].expand(-1, -1, NUM_BOX_PARAMS))
        img_shapes = torch.tensor([s.img_shape for s in samples], device=device)
        boxes = self.bbox_coder.decode(priors[index], deltas, max_shape=img_shapes[:, None, :])
        return self.postprocess(boxes, candidates)

    @torch.no_grad()
    def get_assignments(
        self, featmap_sizes: list[tuple[int, int]], samples: list[DetSample]
    ) -> Assignments:
        """Positive priors per image and level, as training sees them.

        :param featmap_sizes: ``(H_l, W_l)`` of each level (e.g. from
            ``detector.extract_feat(images)`` or ``ceil(pad_shape / stride)``).
        :param samples: the samples with ``gt`` in ``img_shape`` coordinates.
        :returns: an :class:`Assignments` (CPU or the samples' device).
        """
        device = samples[0].gt.boxes.device
        level_priors = self.priors_for(featmap_sizes, device)
        sampling, _ = self._sample(torch.cat(level_priors), samples)
        sizes = [len(p) for p in level_priors]
        pos_inds, pos_gt_inds = [], []
        for image_pos, image_gt_inds in zip(
            sampling.pos_mask, sampling.assign_result.gt_inds, strict=True
        ):
            levels = image_pos.split(sizes)
            level_gt = image_gt_inds.split(sizes)
            pos_inds.append([mask.nonzero().flatten() for mask in levels])
            pos_gt_inds.append([g[mask] - 1 for g, mask in zip(level_gt, levels, strict=True)])
        return Assignments(level_priors, pos_inds, pos_gt_inds, sampling)
