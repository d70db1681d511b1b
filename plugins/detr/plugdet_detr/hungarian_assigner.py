"""One-to-one Hungarian matching of queries to ground-truth boxes (DETR, RT-DETR): a cost of
class, L1 and GIoU terms, solved per image with ``scipy.optimize.linear_sum_assignment``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs
import torch
from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped]
from torch import Tensor
from torchvision.ops import box_convert, box_iou, generalized_box_iou

from core.api import NEGATIVE, AssignResult, ConfigError, GTBatch, Predictions, Priors

#: Added inside the logarithms of the class cost.
LOG_EPS = 1e-8


@attrs.frozen
class MatchCost:
    """The matching cost of a query and a gt box:
    ``cls_weight * class + l1_weight * L1 + giou_weight * (-GIoU)``.

    The class cost is focal-style at the gt class ``c`` with ``p = sigmoid(logit_c)``:
    ``alpha * (1 - p)^gamma * -log(p) - (1 - alpha) * p^gamma * -log(1 - p)``; L1 is taken on
    normalised ``cx, cy, w, h``.
    """

    cls_weight: float = 2.0
    l1_weight: float = 5.0
    giou_weight: float = 2.0
    alpha: float = 0.25
    gamma: float = 2.0

    def __attrs_post_init__(self) -> None:
        weights = {"cls_weight": self.cls_weight, "l1_weight": self.l1_weight,
                   "giou_weight": self.giou_weight}
        negative = [name for name, value in weights.items() if value < 0]
        if negative:
            raise ConfigError(f"Hungarian matching weights must be >= 0: {negative}")
        if not any(weights.values()):
            raise ConfigError("Hungarian matching needs a positive cost weight, all are 0")
        if not 0 <= self.alpha <= 1:
            raise ConfigError(f"Hungarian matching alpha must be in [0, 1], got {self.alpha}")
        if self.gamma < 0:
            raise ConfigError(f"Hungarian matching gamma must be >= 0, got {self.gamma}")

    @torch.no_grad()
    def __call__(self, scores: Tensor, boxes: Tensor, gt_labels: Tensor, gt_boxes: Tensor
                 ) -> Tensor:
        """``(Q, n)`` float32 cost of every query and gt box.

        :param scores: ``(Q, C)`` class probabilities (sigmoid of the logits).
        :param boxes: ``(Q, 4)`` normalised ``cx, cy, w, h`` of the queries.
        :param gt_labels: ``(n,)`` int64 classes in ``[0, C)``.
        :param gt_boxes: ``(n, 4)`` normalised ``cx, cy, w, h``.
        """
        prob = scores.detach().float()[:, gt_labels]
        neg = (1 - self.alpha) * prob.pow(self.gamma) * -(1 - prob + LOG_EPS).log()
        pos = self.alpha * (1 - prob).pow(self.gamma) * -(prob + LOG_EPS).log()
        boxes, gt_boxes = boxes.detach().float(), gt_boxes.detach().float()
        l1 = torch.cdist(boxes, gt_boxes, p=1)
        giou: Tensor = generalized_box_iou(box_convert(boxes, "cxcywh", "xyxy"),
                                           box_convert(gt_boxes, "cxcywh", "xyxy"))
        return self.l1_weight * l1 + self.cls_weight * (pos - neg) + self.giou_weight * -giou


def solve_assignments(costs: Sequence[Tensor]) -> list[tuple[Tensor, Tensor]]:
    """The minimum-cost one-to-one matching of each ``(Q_i, n_i)`` cost matrix.

    The matrices go to the CPU together (one transfer).

    :returns: per matrix ``(rows, cols)``, ``min(Q_i, n_i)`` int64 indices each on the
        matrix's device, rows ascending.
    """
    if not costs:
        return []
    flat = torch.cat([cost.reshape(-1) for cost in costs]).cpu()
    pairs = []
    offset = 0
    for cost in costs:
        size = cost.numel()
        if size == 0:
            empty = torch.zeros(0, dtype=torch.long, device=cost.device)
            pairs.append((empty, empty))
            continue
        matrix = flat[offset:offset + size].reshape(cost.shape).numpy()
        offset += size
        rows, cols = linear_sum_assignment(matrix)
        pairs.append((torch.as_tensor(rows, dtype=torch.long, device=cost.device),
                      torch.as_tensor(cols, dtype=torch.long, device=cost.device)))
    return pairs


def hungarian_match(logits: Tensor, boxes: Tensor, gt_labels: Tensor, gt_boxes: Tensor,
                    cls_weight: float = 2.0, l1_weight: float = 5.0, giou_weight: float = 2.0,
                    alpha: float = 0.25, gamma: float = 2.0) -> tuple[Tensor, Tensor]:
    """Match the queries of one image to its gt boxes, one to one, at the least total cost
    (:class:`MatchCost`).

    :param logits: ``(Q, C)`` raw class logits.
    :param boxes: ``(Q, 4)`` normalised ``cx, cy, w, h``.
    :param gt_labels: ``(n,)`` int64 classes.
    :param gt_boxes: ``(n, 4)`` normalised ``cx, cy, w, h``.
    :returns: ``(query_idx, gt_idx)``, ``min(Q, n)`` int64 indices each (query ascending);
        ``query_idx[k]`` is matched to ``gt_idx[k]``.
    """
    cost = MatchCost(cls_weight, l1_weight, giou_weight, alpha, gamma)
    if len(gt_labels) == 0:
        empty = torch.zeros(0, dtype=torch.long, device=logits.device)
        return empty, empty
    return solve_assignments([cost(logits.detach().sigmoid(), boxes, gt_labels, gt_boxes)])[0]


class HungarianAssigner:
    """One-to-one assigner of set-prediction detectors: each gt box gets exactly one query
    (the Hungarian matching of :class:`MatchCost`), every other query is negative; ignore
    regions are not used.

    The priors are the queries (their reference boxes or points; per image ``(B, Q, ...)``
    with ``valid`` for padding queries, which are never matched); ``pred`` holds the queries'
    class probabilities and decoded xyxy boxes.

    :param cls_weight: weight of the focal-style class cost (RT-DETR: 2).
    :param l1_weight: weight of the L1 cost on normalised ``cx, cy, w, h`` (5).
    :param giou_weight: weight of the ``-GIoU`` cost (2).
    :param alpha: focal balance of the class cost (0.25).
    :param gamma: focal exponent of the class cost (2).
    """

    uses_predictions: ClassVar[bool] = True

    def __init__(self, cls_weight: float = 2.0, l1_weight: float = 5.0,
                 giou_weight: float = 2.0, alpha: float = 0.25, gamma: float = 2.0) -> None:
        self.cost = MatchCost(cls_weight, l1_weight, giou_weight, alpha, gamma)

    def assign(self, priors: Priors, gt: GTBatch, pred: Predictions | None = None,
               image_size: Sequence[float] | Tensor | None = None) -> AssignResult:
        """Match the ``Q`` queries of each of ``B`` images to its gt boxes.

        :param priors: the ``Q`` queries; only ``valid`` (padding queries) is used.
        :param gt: padded ground truth, xyxy in the units of ``pred.boxes``.
        :param pred: detached ``scores (B, Q, C)`` probabilities and ``boxes (B, Q, 4)`` xyxy.
        :param image_size: ``(H, W)`` or per image ``(B, 2)`` of the network input, by which
            boxes are divided for the L1 cost; None when the boxes are already normalised.
        :returns: ``(B, Q)`` assignment: ``gt_inds`` ``i + 1`` for the query matched to gt box
            ``i``, 0 for every other; ``max_overlaps`` and ``quality`` the IoU of each matched
            pair (0 elsewhere); ``labels`` the matched class (-1 elsewhere).
        """
        if pred is None:
            raise ConfigError("HungarianAssigner needs the queries' predictions (pred)")
        num_images, num_queries = pred.scores.shape[:2]
        if priors.num_priors != num_queries:
            raise ConfigError(f"HungarianAssigner got {priors.num_priors} priors for "
                              f"{num_queries} queries")
        device = pred.scores.device
        scale = _box_scale(image_size, num_images, device)
        boxes = box_convert(pred.boxes.detach().float(), "xyxy", "cxcywh") / scale
        gt_boxes = box_convert(gt.boxes.float(), "xyxy", "cxcywh") / scale
        queries = priors.valid_mask(num_images).to(device)
        rows, cols, costs = [], [], []
        for image in range(num_images):
            query_idx = queries[image].nonzero().flatten()
            gt_idx = gt.valid[image].nonzero().flatten()
            rows.append(query_idx)
            cols.append(gt_idx)
            costs.append(self.cost(pred.scores[image, query_idx], boxes[image, query_idx],
                                   gt.labels[image, gt_idx], gt_boxes[image, gt_idx]))
        gt_inds = torch.full((num_images, num_queries), NEGATIVE, dtype=torch.long,
                             device=device)
        labels = torch.full_like(gt_inds, -1)
        overlaps = gt.boxes.new_zeros((num_images, num_queries), dtype=torch.float32)
        for image, (query_k, gt_k) in enumerate(solve_assignments(costs)):
            query, box = rows[image][query_k], cols[image][gt_k]
            gt_inds[image, query] = box + 1
            labels[image, query] = gt.labels[image, box]
            overlaps[image, query] = box_iou(pred.boxes[image, query].detach().float(),
                                             gt.boxes[image, box].float()).diagonal()
        return AssignResult(gt_inds, overlaps, labels, gt.num_gts, quality=overlaps.clone())


def _box_scale(image_size: Sequence[float] | Tensor | None, num_images: int,
               device: torch.device) -> Tensor:
    """``(B, 1, 4)`` divisor ``(W, H, W, H)`` of each image's cxcywh boxes (ones for None)."""
    if image_size is None:
        return torch.ones((num_images, 1, 4), device=device)
    size = torch.as_tensor(image_size, dtype=torch.float32, device=device).reshape(-1, 2)
    size = size.expand(num_images, 2)
    return size.flip(-1).repeat(1, 2)[:, None, :]
