"""The RT-DETR detector: ResNet-vd -> hybrid encoder -> :class:`RTDETRHead` (query selection,
deformable decoder with denoising queries in training, set losses; top-k without NMS at test
time)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch
from torch import Tensor, nn
from torchvision.ops import box_convert

from core.api import (
    NEGATIVE,
    Assignments,
    AssignResult,
    ConfigError,
    DetSample,
    Instances,
    Priors,
    SampleResult,
    SingleStageDetector,
    assignments_by_level,
)
from plugdet_detr.criterion import DEFAULT_WEIGHTS, RTDETRCriterion
from plugdet_detr.decoder import RTDETRDecoder, anchor_boxes
from plugdet_detr.denoising import contrastive_denoising
from plugdet_detr.losses import matched_iou
from plugdet_detr.outputs import DetrOutputs, DetrTargets

#: The ``DetSample.meta`` key that marks a view of test-time augmentation.
TTA_VIEW_KEY = "tta_group"

#: RT-DETR's matching cost (class, L1, GIoU weights; focal alpha and gamma of the class cost).
DEFAULT_MATCHER = {"cls_weight": 2.0, "l1_weight": 5.0, "giou_weight": 2.0, "alpha": 0.25,
                   "gamma": 2.0}


def input_scale(sample: DetSample, like: Tensor) -> Tensor:
    """``(4,)`` ``(W, H, W, H)`` of the padded network input of ``sample``."""
    height, width = sample.pad_shape
    return like.new_tensor([width, height, width, height])


def refuse_tta_views(samples: Sequence[DetSample]) -> None:
    """Raise :class:`ConfigError` when ``samples`` are views of test-time augmentation.

    The views of an image are merged with class-wise NMS, while RT-DETR's test path is the
    top-k query-class pairs with no NMS.
    """
    if any(TTA_VIEW_KEY in sample.meta for sample in samples):
        raise ConfigError("RT-DETR does not support test-time augmentation (--tta, "
                          "train.test_tta = true): the views would be merged with NMS, and "
                          "RT-DETR's detections are the top-k query-class pairs without NMS")


def detr_targets(samples: Sequence[DetSample], device: torch.device) -> DetrTargets:
    """The samples' gt boxes as ``cx, cy, w, h`` divided by the padded input size, and their
    labels (an image without boxes gives empty tensors)."""
    labels, boxes = [], []
    for sample in samples:
        gt_boxes = sample.gt.boxes.to(device=device, dtype=torch.float32)
        boxes.append(box_convert(gt_boxes, "xyxy", "cxcywh") / input_scale(sample, gt_boxes))
        labels.append(sample.gt.labels.to(device=device, dtype=torch.long))
    return DetrTargets(labels=labels, boxes=boxes)


@attrs.frozen
class LevelStrides:
    """The strides of the encoder levels, input pixels per cell (finest first): what the
    positive-sample tools read of a head's prior generator."""

    strides: tuple[int, ...]


def selected_assignment(pairs: Sequence[tuple[Tensor, Tensor]], query_inds: Tensor,
                        boxes: Tensor, targets: DetrTargets, num_priors: int
                        ) -> AssignResult:
    """The matching of the queries put on the anchors they were selected from.

    :param pairs: per image the matched ``(query_idx, gt_idx)``.
    :param query_inds: ``(B, Q)`` anchor of each query (index into the ``N`` anchors).
    :param boxes: ``(B, Q, 4)`` the queries' boxes, normalised ``cx, cy, w, h``.
    :param targets: the ``B`` images' ground truth, normalised like ``boxes``.
    :param num_priors: ``N``.
    :returns: ``(B, N)``: ``gt_inds`` ``i + 1`` on the anchor of the query matched to gt box
        ``i``, 0 elsewhere; ``max_overlaps`` and ``quality`` that query's IoU with its gt box
        (the same in pixels: both are scaled alike); ``labels`` the matched class (-1
        elsewhere).
    """
    device = query_inds.device
    gt_inds = torch.full((len(pairs), num_priors), NEGATIVE, dtype=torch.long, device=device)
    labels = torch.full_like(gt_inds, -1)
    overlaps = torch.zeros(gt_inds.shape, dtype=torch.float32, device=device)
    for image, (query, gt) in enumerate(pairs):
        anchors = query_inds[image, query]
        gt_inds[image, anchors] = gt + 1
        labels[image, anchors] = targets.labels[image][gt]
        overlaps[image, anchors] = matched_iou(boxes[image, query].float(),
                                               targets.boxes[image][gt].float())
    num_gts = torch.tensor([len(image_labels) for image_labels in targets.labels],
                           device=device)
    return AssignResult(gt_inds, overlaps, labels, num_gts, quality=overlaps.clone())


class RTDETRHead(nn.Module):
    """RT-DETR's decoder with its criterion and test-time selection (a ``head`` component).

    Training: the gt boxes of each image are normalised by its padded input size, the
    denoising queries are drawn from them, the decoder runs on the matching and denoising
    queries and :class:`~plugdet_detr.criterion.RTDETRCriterion` gives the losses
    (``loss_vfl``, ``loss_bbox``, ``loss_giou`` and their ``.d{i}``, ``.enc``, ``.dn{i}``
    variants). Test: the sigmoid scores of the ``Q x C`` query-class pairs of the last layer,
    the ``num_top_queries`` best kept, with no NMS (a query may give several classes).

    :param num_classes: ``C``.
    :param in_channels: channels of the encoder levels.
    :param hidden_dim: decoder width.
    :param num_queries: queries selected from the encoder (300).
    :param num_layers: decoder layers (R18: 3, R50: 6).
    :param num_heads: attention heads.
    :param num_points: deformable sampling points per head and level.
    :param ffn_dim: FFN width.
    :param dropout: decoder dropout.
    :param num_denoising: denoising queries per batch (100; 0 switches denoising off).
    :param label_noise_ratio: twice the probability of a denoising label being replaced.
    :param box_noise_scale: corner noise of the denoising boxes, in half box sizes.
    :param eval_idx: decoder layer used at test time (-1: last).
    :param num_top_queries: detections kept per image at test time (300).
    :param loss_weights: ``vfl``, ``bbox``, ``giou`` loss weights.
    :param matcher: Hungarian matching cost (``cls_weight``, ``l1_weight``, ``giou_weight``,
        ``alpha``, ``gamma``).
    :param vfl_alpha: varifocal weight of the negatives.
    :param vfl_gamma: varifocal exponent.
    :param strides: input pixels per cell of the encoder levels (finest first), the
        ``prior_generator.strides`` of the positive-sample tools.
    """

    def __init__(self, num_classes: int = 80, in_channels: tuple[int, ...] = (256, 256, 256),
                 hidden_dim: int = 256, num_queries: int = 300, num_layers: int = 6,
                 num_heads: int = 8, num_points: int = 4, ffn_dim: int = 1024,
                 dropout: float = 0.0, num_denoising: int = 100, label_noise_ratio: float = 0.5,
                 box_noise_scale: float = 1.0, eval_idx: int = -1, num_top_queries: int = 300,
                 loss_weights: dict[str, float] = DEFAULT_WEIGHTS,
                 matcher: dict[str, float] = DEFAULT_MATCHER, vfl_alpha: float = 0.75,
                 vfl_gamma: float = 2.0, strides: Sequence[int] = (8, 16, 32)) -> None:
        super().__init__()
        if len(strides) != len(in_channels):
            raise ConfigError(f"RTDETRHead: {len(strides)} strides for {len(in_channels)} "
                              "encoder levels")
        self.prior_generator = LevelStrides(tuple(int(stride) for stride in strides))
        self.num_classes = num_classes
        self.num_queries = num_queries
        self.num_denoising = num_denoising
        self.label_noise_ratio = label_noise_ratio
        self.box_noise_scale = box_noise_scale
        self.num_top_queries = num_top_queries
        self.decoder = RTDETRDecoder(num_classes, in_channels, hidden_dim, num_queries,
                                     num_layers, num_heads, num_points, ffn_dim, dropout,
                                     num_denoising, eval_idx)
        self.criterion = RTDETRCriterion(num_classes, loss_weights, matcher, vfl_alpha,
                                         vfl_gamma)

    def forward(self, feats: tuple[Tensor, ...]) -> DetrOutputs:
        """The decoder's outputs without denoising queries (all layers in training mode, the
        ``eval_idx`` layer in eval mode)."""
        return self.decoder(feats)  # type: ignore[no-any-return]

    def loss(self, feats: tuple[Tensor, ...], samples: list[DetSample]) -> dict[str, Tensor]:
        """:param feats: encoder levels. :param samples: the batch's samples (``gt`` in input
        pixels, ``pad_shape`` the padded input). :returns: the weighted losses."""
        targets = detr_targets(samples, feats[0].device)
        denoising = None
        if self.decoder.denoising_class_embed is not None:
            denoising = contrastive_denoising(
                targets, self.num_classes, self.num_queries, self.decoder.denoising_class_embed,
                self.num_denoising, self.label_noise_ratio, self.box_noise_scale)
        outputs = self.decoder(feats, denoising)
        return self.criterion(outputs, targets)

    @torch.no_grad()
    def predict(self, feats: tuple[Tensor, ...], samples: list[DetSample]) -> list[Instances]:
        """:returns: per image the top ``num_top_queries`` (query, class) pairs by sigmoid
        score, boxes in input pixels (``xyxy``), no NMS.
        :raises ConfigError: ``samples`` are views of test-time augmentation."""
        refuse_tta_views(samples)
        outputs = self.decoder(feats)
        scores = outputs.logits[-1].sigmoid().flatten(1)  # (B, Q * C)
        top = scores.topk(min(self.num_top_queries, scores.shape[1]), dim=1)
        queries = top.indices // self.num_classes
        labels = top.indices % self.num_classes
        boxes = box_convert(outputs.boxes[-1], "cxcywh", "xyxy")
        results = []
        for image, sample in enumerate(samples):
            image_boxes = boxes[image, queries[image]].float()
            results.append(Instances(image_boxes * input_scale(sample, image_boxes),
                                     labels[image], top.values[image].float()))
        return results


    @torch.no_grad()
    def get_assignments(self, feats: tuple[Tensor, ...], samples: list[DetSample]
                        ) -> Assignments:
        """The anchors the matched queries were selected from, per image and level.

        The decoder runs in eval mode (restored afterwards) without denoising queries; its
        last layer's queries are matched to the gt boxes as the criterion matches them, and
        each matched query's positive is the anchor (memory position) it was selected from.

        :param feats: encoder levels ``(B, C_l, H_l, W_l)``.
        :param samples: the samples (``gt`` in input pixels, ``pad_shape`` the batch input).
        :returns: the priors of level ``l`` are its ``(H_l * W_l, 4)`` query-selection anchors,
            xyxy input pixels, in the flattened memory order; ``sample_result`` ``(B, N)``.
        """
        training = self.decoder.training
        self.decoder.eval()
        try:
            outputs = self.decoder(feats)
        finally:
            self.decoder.train(training)
        if outputs.query_inds is None:
            raise ValueError("RTDETRDecoder returned no query indices")
        device = feats[0].device
        targets = detr_targets(samples, device)
        pairs = self.criterion.match(outputs.logits[-1], outputs.boxes[-1], targets)
        shapes = [(int(feat.shape[-2]), int(feat.shape[-1])) for feat in feats]
        scale = input_scale(samples[0], outputs.boxes)
        anchors = box_convert(anchor_boxes(shapes, device=device)[0], "cxcywh", "xyxy") * scale
        sizes = [height * width for height, width in shapes]
        priors = Priors.from_levels(list(anchors.split(sizes)), self.prior_generator.strides)
        assigned = selected_assignment(pairs, outputs.query_inds, outputs.boxes[-1], targets,
                                       sum(sizes))
        sampling = SampleResult(assigned.pos_mask, assigned.neg_mask, assigned, priors)
        return assignments_by_level(priors, sampling)


class RTDETR(SingleStageDetector):
    """Backbone (ResNet-vd) -> neck (:class:`~plugdet_detr.hybrid_encoder.HybridEncoder`) ->
    :class:`RTDETRHead`; training and test paths are the single-stage detector's (detections
    mapped back to the original image), the name keeps configs readable."""
