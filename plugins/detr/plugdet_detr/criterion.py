"""RT-DETR's training criterion: Hungarian matching and set losses on every decoder layer, the
encoder's proposals and the denoising groups."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from core.api import ConfigError
from plugdet_detr.hungarian_assigner import MatchCost, solve_assignments
from plugdet_detr.losses import giou_box_loss, l1_box_loss, matched_iou, varifocal_loss
from plugdet_detr.outputs import DenoisingGroups, DetrOutputs, DetrTargets

#: The loss weights of RT-DETR.
DEFAULT_WEIGHTS = {"vfl": 1.0, "bbox": 5.0, "giou": 2.0}

#: Per image, the matched ``(query_idx, gt_idx)`` pairs.
Pairs = list[tuple[Tensor, Tensor]]


def box_normaliser(targets: DetrTargets, device: torch.device) -> float:
    """The number of gt boxes of the batch, averaged over the ranks when torch.distributed is
    initialised, at least 1.

    Every rank must call it (it all-reduces even when its own batch has no boxes).
    """
    count = torch.tensor([float(sum(len(labels) for labels in targets.labels))],
                         device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(count)
        count = count / dist.get_world_size()
    return float(count.clamp(min=1).item())


def denoising_pairs(dn: DenoisingGroups, targets: DetrTargets) -> Pairs:
    """The ``(query_idx, gt_idx)`` pairs of the positive denoising queries of each image."""
    pairs = []
    for image, (queries, gts) in enumerate(zip(dn.positive_queries, dn.positive_targets,
                                               strict=True)):
        if len(queries) != len(gts) or len(queries) != dn.num_groups * len(
                targets.labels[image]):
            raise ValueError(f"image {image}: {len(queries)} positive denoising queries and "
                             f"{len(gts)} targets for {dn.num_groups} groups of "
                             f"{len(targets.labels[image])} boxes")
        pairs.append((queries.long(), gts.long()))
    return pairs


class RTDETRCriterion:
    """Matching and losses of RT-DETR.

    Every output set (each decoder layer, the encoder's top-Q proposals) is matched to the
    ground truth on its own (Hungarian, :class:`MatchCost`); the denoising queries use the
    pairs of their groups. Each set gets a varifocal loss and, on its pairs, L1 and GIoU box
    losses, weighted and divided by the number of gt boxes of the batch (averaged over ranks,
    at least 1; times the number of groups for denoising).

    Keys, each starting with ``loss`` so that the runner sums them all: ``loss_vfl``,
    ``loss_bbox``, ``loss_giou`` for the last decoder layer; the same with the suffix
    ``.d{i}`` for the earlier layers ``i = 0 .. L - 2``, ``.enc`` for the encoder's proposals
    and ``.dn{i}`` for the denoising queries of layer ``i = 0 .. L - 1``.

    :param num_classes: C.
    :param weights: loss weights by name ``vfl``, ``bbox``, ``giou`` (RT-DETR: 1, 5, 2);
        missing names keep their defaults.
    :param matcher: keyword arguments of :class:`MatchCost` (``cls_weight``, ``l1_weight``,
        ``giou_weight``, ``alpha``, ``gamma``; RT-DETR: 2, 5, 2, 0.25, 2).
    :param alpha: varifocal weight of the negatives (0.75).
    :param gamma: varifocal exponent (2).
    """

    def __init__(self, num_classes: int, weights: Mapping[str, float] | None = None,
                 matcher: Mapping[str, float] | None = None, alpha: float = 0.75,
                 gamma: float = 2.0) -> None:
        if num_classes < 1:
            raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
        unknown = sorted(set(weights or {}) - set(DEFAULT_WEIGHTS))
        if unknown:
            raise ConfigError(f"unknown RT-DETR loss weights {unknown}; known: "
                              f"{sorted(DEFAULT_WEIGHTS)}")
        self.num_classes = num_classes
        self.weights = {**DEFAULT_WEIGHTS, **(weights or {})}
        try:
            self.match_cost = MatchCost(**(matcher or {}))
        except TypeError as error:
            raise ConfigError(f"RT-DETR matcher: {error}") from error
        self.alpha = alpha
        self.gamma = gamma

    def __call__(self, outputs: DetrOutputs, targets: DetrTargets) -> dict[str, Tensor]:
        """The weighted losses of ``outputs`` against ``targets`` (keys: see the class)."""
        return self.losses(outputs, targets, box_normaliser(targets, outputs.logits.device))

    def losses(self, outputs: DetrOutputs, targets: DetrTargets, num_boxes: float
               ) -> dict[str, Tensor]:
        """As :meth:`__call__`, with the normaliser given."""
        if outputs.logits.shape[-1] != self.num_classes:
            raise ValueError(f"{outputs.logits.shape[-1]} class logits for "
                             f"{self.num_classes} classes")
        losses: dict[str, Tensor] = {}
        num_layers = len(outputs.logits)
        for layer in range(num_layers):
            suffix = "" if layer == num_layers - 1 else f".d{layer}"
            losses.update(self.matched_losses(outputs.logits[layer], outputs.boxes[layer],
                                              targets, num_boxes, suffix))
        losses.update(self.matched_losses(outputs.enc_logits, outputs.enc_boxes, targets,
                                          num_boxes, ".enc"))
        if outputs.dn is not None and outputs.dn_logits is not None \
                and outputs.dn_boxes is not None:
            pairs = denoising_pairs(outputs.dn, targets)
            dn_boxes = num_boxes * outputs.dn.num_groups
            for layer in range(len(outputs.dn_logits)):
                losses.update(self.set_losses(outputs.dn_logits[layer], outputs.dn_boxes[layer],
                                              targets, pairs, dn_boxes, f".dn{layer}"))
        return losses

    def match(self, logits: Tensor, boxes: Tensor, targets: DetrTargets) -> Pairs:
        """Hungarian matching of one output set.

        :param logits: ``(B, Q, C)``; :param boxes: ``(B, Q, 4)`` ``cx, cy, w, h``.
        :returns: per image ``(query_idx, gt_idx)``.
        """
        scores = logits.detach().sigmoid()
        costs = [self.match_cost(scores[image], boxes[image], labels, gt_boxes)
                 for image, (labels, gt_boxes) in enumerate(zip(targets.labels, targets.boxes,
                                                                strict=True))]
        return solve_assignments(costs)

    def matched_losses(self, logits: Tensor, boxes: Tensor, targets: DetrTargets,
                       num_boxes: float, suffix: str) -> dict[str, Tensor]:
        """Match one output set, then :meth:`set_losses`."""
        return self.set_losses(logits, boxes, targets, self.match(logits, boxes, targets),
                               num_boxes, suffix)

    def set_losses(self, logits: Tensor, boxes: Tensor, targets: DetrTargets, pairs: Pairs,
                   num_boxes: float, suffix: str) -> dict[str, Tensor]:
        """The weighted losses of one output set whose pairs are known.

        :param logits: ``(B, Q, C)`` class logits; :param boxes: ``(B, Q, 4)``.
        :param pairs: per image ``(query_idx, gt_idx)``.
        :returns: ``loss_vfl``, ``loss_bbox``, ``loss_giou`` with ``suffix``; each stays
            connected to ``logits`` or ``boxes`` when there are no pairs.
        """
        logits, boxes = logits.float(), boxes.float()
        image_idx = torch.cat([torch.full_like(query, image)
                               for image, (query, _) in enumerate(pairs)])
        query_idx = torch.cat([query for query, _ in pairs])
        gt_boxes = torch.cat([targets.boxes[image][gt].float()
                              for image, (_, gt) in enumerate(pairs)])
        gt_labels = torch.cat([targets.labels[image][gt] for image, (_, gt) in enumerate(pairs)])
        matched_boxes = boxes[image_idx, query_idx]
        classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.long,
                             device=logits.device)
        classes[image_idx, query_idx] = gt_labels.long()
        one_hot = F.one_hot(classes, self.num_classes + 1)[..., :-1].to(logits.dtype)
        quality = torch.zeros(logits.shape[:2], dtype=logits.dtype, device=logits.device)
        quality[image_idx, query_idx] = matched_iou(matched_boxes, gt_boxes)
        return {
            f"loss_vfl{suffix}": self.weights["vfl"] * varifocal_loss(
                logits, one_hot, quality, num_boxes, self.alpha, self.gamma),
            f"loss_bbox{suffix}": self.weights["bbox"] * l1_box_loss(
                matched_boxes, gt_boxes, num_boxes),
            f"loss_giou{suffix}": self.weights["giou"] * giou_box_loss(
                matched_boxes, gt_boxes, num_boxes),
        }
