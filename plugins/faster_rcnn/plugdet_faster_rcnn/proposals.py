"""Proposal selection of a region proposal network: per-level top-k objectness, NMS within
each level, the best proposals per image."""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from core.api import Candidates, ConfigError, Instances, MultiClassNMS

#: Label of every proposal (objectness is class-agnostic).
PROPOSAL_LABEL = 0


class ProposalNMS(MultiClassNMS):
    """Selects proposals from per-level objectness: the ``nms_pre`` best anchors of each level,
    boxes narrower or lower than ``min_bbox_size`` dropped, NMS at ``iou_threshold`` among the
    boxes of one level (as torchvision and MMDetection do), then the best ``max_per_img``.

    :param nms_pre: anchors kept per level before NMS.
    :param iou_threshold: IoU above which a lower-scored proposal of the same level goes.
    :param max_per_img: proposals kept per image after NMS.
    :param score_thr: objectness probability a proposal must exceed.
    :param min_bbox_size: smallest width and height of a kept proposal (pixels).
    """

    def __init__(
        self,
        nms_pre: int = 1000,
        iou_threshold: float = 0.7,
        max_per_img: int = 1000,
        score_thr: float = 0.0,
        min_bbox_size: float = 1e-3,
    ) -> None:
        super().__init__(score_thr, nms_pre, iou_threshold, max_per_img)
        if min_bbox_size < 0:
            raise ConfigError(f"min_bbox_size: expected >= 0, got {min_bbox_size}")
        self.min_bbox_size = min_bbox_size

    def select(self, level_scores: list[Tensor]) -> Candidates:
        """Top ``nms_pre`` anchors per level; the candidates' ``labels`` are their level.

        :param level_scores: per level ``(B, N_l, 1)`` objectness probabilities.
        :returns: ``(B, K)`` candidates, ``K = sum_l min(nms_pre, N_l)``.
        """
        if any(s.shape[-1] != 1 for s in level_scores):
            raise ValueError("ProposalNMS expects one objectness score per anchor")
        candidates = super().select(level_scores)
        counts = torch.tensor([min(self.nms_pre, s.shape[1]) for s in level_scores],
                              device=candidates.scores.device)
        levels = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)
        return attrs.evolve(candidates, labels=levels.expand_as(candidates.labels))

    def __call__(self, boxes: Tensor, candidates: Candidates) -> list[Instances]:
        """NMS per image and level.

        :param boxes: ``(B, K, 4)`` decoded (clipped) xyxy boxes of the candidates.
        :param candidates: from :meth:`select`.
        :returns: B proposal sets of at most ``max_per_img`` boxes, objectness descending,
            labels :data:`PROPOSAL_LABEL`.
        """
        sizes = boxes[..., 2:] - boxes[..., :2]
        large = (sizes >= self.min_bbox_size).all(dim=-1)
        kept = super().__call__(boxes, attrs.evolve(candidates, valid=candidates.valid & large))
        return [Instances(p.boxes, torch.full_like(p.labels, PROPOSAL_LABEL), p.scores)
                for p in kept]
