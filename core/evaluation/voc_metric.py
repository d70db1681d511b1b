"""Pascal VOC mean average precision at one IoU threshold."""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np

from core.errors import ConfigError
from core.evaluation.coco_metric import format_table
from core.evaluation.records import ImageResult, gather_results, record_from_sample
from core.structures import DetSample

LOGGER = logging.getLogger("plugdet.evaluation")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``(N, 4)`` and ``(M, 4)`` xyxy boxes -> ``(N, M)``."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def average_precision(
    recall: np.ndarray, precision: np.ndarray, mode: Literal["11points", "area"]
) -> float:
    """AP from a precision/recall curve (detections sorted by decreasing score).

    ``"area"``: area under the curve made monotonically decreasing (VOC2010+);
    ``"11points"``: mean of the best precision at recall >= 0, 0.1, ..., 1 (VOC2007).
    """
    if mode == "11points":
        points = []
        for threshold in np.linspace(0.0, 1.0, 11):
            reached = precision[recall >= threshold]
            points.append(reached.max() if reached.size else 0.0)
        return float(np.mean(points))
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def match_class(
    results: list[ImageResult], label: int, iou_thr: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Greedy VOC matching of one class.

    Detections are visited by decreasing score; each takes the ground truth it overlaps
    most (ignore regions included). IoU >= ``iou_thr`` with an unused box: true positive; with
    an ignore region: neither; otherwise (or the box is used): false positive.

    :returns: ``scores``, ``tp`` and ``fp`` flags of the counted detections (sorted by score)
        and the number of ground-truth boxes.
    """
    scores, tps, fps = [], [], []
    num_gt = 0
    for result in results:
        gt = result.gt_boxes[result.gt_labels == label]
        ignore = result.ignore_boxes[result.ignore_labels == label]
        num_gt += len(gt)
        mask = result.pred_labels == label
        boxes, det_scores = result.pred_boxes[mask], result.pred_scores[mask]
        order = np.argsort(-det_scores, kind="stable")
        candidates = np.concatenate([gt, ignore]).reshape(-1, 4)
        is_ignore = np.arange(len(candidates)) >= len(gt)
        used = np.zeros(len(candidates), dtype=bool)
        ious = box_iou(boxes[order], candidates) if len(candidates) else None
        for rank, index in enumerate(order):
            if ious is not None:
                best = int(ious[rank].argmax())
                if ious[rank, best] >= iou_thr:
                    if is_ignore[best]:
                        continue
                    scores.append(det_scores[index])
                    tps.append(not used[best])
                    fps.append(used[best])
                    used[best] = True
                    continue
            scores.append(det_scores[index])
            tps.append(False)
            fps.append(True)
    scores_arr = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores_arr, kind="stable")
    return (scores_arr[order], np.asarray(tps, bool)[order], np.asarray(fps, bool)[order], num_gt)


class VocMetric:
    """Pascal VOC mAP: per-class AP at ``iou_thr``, averaged over classes with ground truth.

    ``difficult`` boxes (ignore regions) neither count as ground truth nor make detections
    on them false positives. Results are gathered across ranks.

    :param iou_thr: IoU needed for a true positive.
    :param eval_mode: ``"area"`` (VOC2010+) or ``"11points"`` (VOC2007).
    :param prefix: key prefix of the returned values.
    """

    def __init__(
        self,
        iou_thr: float = 0.5,
        eval_mode: Literal["11points", "area"] = "area",
        prefix: str = "voc",
    ) -> None:
        if not 0.0 < iou_thr <= 1.0:
            raise ValueError(f"iou_thr must be in (0, 1], got {iou_thr}")
        self.iou_thr = iou_thr
        self.eval_mode = eval_mode
        self.prefix = prefix
        self.dataset_meta: dict[str, Any] = {}
        self.results: list[ImageResult] = []
        #: the per-class table of the last :meth:`evaluate` (text).
        self.table = ""

    def reset(self) -> None:
        """Forget processed samples."""
        self.results = []

    def process(self, samples: list[DetSample]) -> None:
        """Record ground truth and predictions (``sample.pred``) of a batch."""
        self.results.extend(record_from_sample(sample) for sample in samples)

    def evaluate(self) -> dict[str, float]:
        """``{"voc/mAP": ..., "voc/AP_<class>": ...}`` over everything processed (all ranks)."""
        classes = tuple(self.dataset_meta.get("classes", ()))
        if not classes:
            raise ConfigError("VocMetric: dataset_meta['classes'] is not set")
        results = gather_results(self.results)
        values: dict[str, float] = {}
        rows = []
        aps = []
        for label, name in enumerate(classes):
            _, tp, fp, num_gt = match_class(results, label, self.iou_thr)
            tp_sum, fp_sum = np.cumsum(tp), np.cumsum(fp)
            recall = tp_sum / max(num_gt, 1)
            precision = tp_sum / np.maximum(tp_sum + fp_sum, np.finfo(np.float64).eps)
            ap = average_precision(recall, precision, self.eval_mode) if num_gt else 0.0
            if num_gt:
                aps.append(ap)
            values[f"{self.prefix}/AP_{name}"] = ap
            rows.append((name, num_gt, len(tp), float(recall[-1]) if len(tp) else 0.0, ap))
        values[f"{self.prefix}/mAP"] = float(np.mean(aps)) if aps else 0.0
        self.table = format_table(["class", "gts", "dets", "recall", "AP"], rows)
        LOGGER.info(
            "VOC mAP@%.2f (%s): %.4f\n%s",
            self.iou_thr,
            self.eval_mode,
            values[f"{self.prefix}/mAP"],
            self.table,
        )
        return values
