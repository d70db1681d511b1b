"""Merging the detections of overlapping tiles: NMS and greedy non-maximum merging.

Both follow SAHI's post-processes (``NMSPostprocess``, ``GreedyNMMPostprocess``):

* the detections are visited by score, highest first (ties: smaller ``x1``, then ``y1``,
  ``x2``, ``y2`` first);
* the match of two boxes is their IoU or their IoS (intersection over the smaller box's area),
  computed in float32; a pair of boxes of no area does not match;
* class-aware (the default) matches boxes of one class only; class-agnostic matches any two.

``nms`` keeps a detection unless a kept one matches it (match >= threshold). ``greedy_nmm``
makes each detection not yet taken a keeper that takes every later untaken detection
matching it (>= threshold); the keeper then absorbs its taken detections one by one, in score
order, each only while it still matches the grown box (match > threshold, as SAHI re-checks):
the merged box is the union of both boxes, the merged score the higher score, the merged label
that of the higher-scoring one (the absorbed one's on a tie). A box cut in two by a tile edge
is two detections of which the smaller lies inside the larger's tile-side part: their IoS is
high, so greedy NMM joins them into one box, where NMS keeps the higher-scoring piece.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from core.structures import Instances

MergeMethod = Literal["greedy_nmm", "nms"]
MatchMetric = Literal["ios", "iou"]
MERGE_METHODS = ("greedy_nmm", "nms")
MATCH_METRICS = ("ios", "iou")


def box_match(box: np.ndarray, boxes: np.ndarray, metric: MatchMetric) -> np.ndarray:
    """IoU or IoS of one box ``(4,)`` with boxes ``(N, 4)`` (xyxy, same dtype) -> ``(N,)``;
    0 where the denominator is 0."""
    width = np.maximum(0, np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]))
    height = np.maximum(0, np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]))
    inter = width * height
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    denominator = np.minimum(area, areas) if metric == "ios" else area + areas - inter
    out = np.zeros_like(inter)
    np.divide(inter, denominator, out=out, where=denominator > 0)
    return out


def score_order(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Indices by score, highest first; ties by ``x1``, ``y1``, ``x2``, ``y2`` ascending."""
    return np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], -scores))


def _groups(labels: np.ndarray, class_agnostic: bool) -> list[np.ndarray]:
    if class_agnostic:
        return [np.arange(len(labels))]
    return [np.flatnonzero(labels == label) for label in np.unique(labels)]


def nms_keep(boxes: np.ndarray, scores: np.ndarray, metric: MatchMetric,
             threshold: float) -> list[int]:
    """Indices of the detections NMS keeps among ``boxes`` ``(N, 4)`` float32, score order."""
    order = score_order(boxes, scores)
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for index in order:
        if suppressed[index]:
            continue
        keep.append(int(index))
        suppressed |= box_match(boxes[index], boxes, metric) >= threshold
    return keep


def greedy_nmm_groups(boxes: np.ndarray, scores: np.ndarray, metric: MatchMetric,
                      threshold: float) -> dict[int, list[int]]:
    """Keeper -> the detections it takes (score order), among ``boxes`` ``(N, 4)`` float32."""
    order = score_order(boxes, scores)
    taken = np.zeros(len(boxes), dtype=bool)
    groups: dict[int, list[int]] = {}
    for position, index in enumerate(order):
        if taken[index]:
            continue
        rest = order[position + 1:]
        rest = rest[~taken[rest]]
        matched = rest[box_match(boxes[index], boxes[rest], metric) >= threshold]
        taken[matched] = True
        groups[int(index)] = matched.tolist()
    return groups


def _matches(a: list[float], b: list[float], metric: MatchMetric, threshold: float) -> bool:
    """SAHI's re-check of a keeper's grown box against a taken box (float64, strict)."""
    match = box_match(np.asarray(a, dtype=np.float64),
                      np.asarray([b], dtype=np.float64), metric)[0]
    return bool(match > threshold)


def _absorb(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, keeper: int,
            taken: list[int], metric: MatchMetric,
            threshold: float) -> tuple[list[float], float, int]:
    """The keeper's box, score and label after absorbing its taken detections in order."""
    box = [float(v) for v in boxes[keeper]]
    score, label = float(scores[keeper]), int(labels[keeper])
    for other in taken:
        other_box = [float(v) for v in boxes[other]]
        if not _matches(box, other_box, metric, threshold):
            continue
        other_score = float(scores[other])
        label = label if score > other_score else int(labels[other])
        box = [min(box[0], other_box[0]), min(box[1], other_box[1]),
               max(box[2], other_box[2]), max(box[3], other_box[3])]
        score = max(score, other_score)
    return box, score, label


def merge_detections(detections: Instances, method: MergeMethod = "greedy_nmm",
                     metric: MatchMetric = "ios", threshold: float = 0.5,
                     class_agnostic: bool = False) -> Instances:
    """The detections of all tiles of one image (boxes ``(N, 4)`` in image pixels, scores
    ``(N,)``) merged into one set ``(M, 4)``, M <= N, in score order of the keepers.

    :raises ValueError: an unknown method or metric, or detections without scores.
    """
    if method not in MERGE_METHODS:
        raise ValueError(f"merge method must be one of {MERGE_METHODS}, got {method!r}")
    if metric not in MATCH_METRICS:
        raise ValueError(f"match metric must be one of {MATCH_METRICS}, got {metric!r}")
    if detections.scores is None:
        raise ValueError("merging needs scored detections")
    boxes = detections.boxes.detach().cpu().to(torch.float32).numpy()
    scores = detections.scores.detach().cpu().to(torch.float32).numpy()
    labels = detections.labels.detach().cpu().numpy()
    out_boxes: list[list[float]] = []
    out_scores: list[float] = []
    out_labels: list[int] = []
    for group in _groups(labels, class_agnostic):
        if method == "nms":
            for local in nms_keep(boxes[group], scores[group], metric, threshold):
                index = int(group[local])
                out_boxes.append([float(v) for v in boxes[index]])
                out_scores.append(float(scores[index]))
                out_labels.append(int(labels[index]))
            continue
        local_groups = greedy_nmm_groups(boxes[group], scores[group], metric, threshold)
        for keeper, taken in local_groups.items():
            box, score, label = _absorb(boxes, scores, labels, int(group[keeper]),
                                        [int(group[t]) for t in taken], metric, threshold)
            out_boxes.append(box)
            out_scores.append(score)
            out_labels.append(label)
    if not out_boxes:
        return Instances.empty(with_scores=True)
    merged_scores = torch.tensor(out_scores, dtype=torch.float32)
    order = torch.argsort(merged_scores, descending=True, stable=True)
    return Instances(torch.tensor(out_boxes, dtype=torch.float32)[order],
                     torch.tensor(out_labels, dtype=torch.int64)[order], merged_scores[order])
