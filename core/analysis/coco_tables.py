"""COCO-style tables of a set of predictions: AP per class (AP, AP50, AP75, AP small / medium
/ large, box counts), AP by object size and by aspect ratio, and recall against the IoU
threshold (pycocotools' ``COCOeval``, the algorithm of ``CocoMetric``)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
from pycocotools.cocoeval import COCOeval

from core.evaluation.coco_metric import coco_from_dict, detections_from_results, gt_from_results
from core.evaluation.records import ImageResult

#: IoU thresholds of the evaluation: 0.10 .. 0.95 (AP uses 0.50 .. 0.95, as COCO).
IOU_THRESHOLDS = np.round(np.arange(0.10, 0.951, 0.05), 2)
COCO_AREAS = (("all", 0.0, 1e10), ("small", 0.0, 32.0**2), ("medium", 32.0**2, 96.0**2),
              ("large", 96.0**2, 1e10))
#: Aspect-ratio bins (width / height) of the AP by shape.
ASPECTS = (("all", 0.0, 1e10), ("tall (w/h < 2/3)", 0.0, 2 / 3),
           ("square (2/3 .. 3/2)", 2 / 3, 1.5), ("wide (w/h > 3/2)", 1.5, 1e10))
MAX_DETS = 100


@attrs.define
class ClassRow:
    """One class: APs in 0..1, ``None`` where undefined (no box of that class and size).

    :ivar num_gt: ground-truth boxes (crowd regions excluded); ``num_pred``: detections.
    """

    name: str
    ap: float | None
    ap50: float | None
    ap75: float | None
    ap_small: float | None
    ap_medium: float | None
    ap_large: float | None
    num_gt: int
    num_pred: int


@attrs.define
class CocoTables:
    """The tables of one evaluation.

    :ivar overall: the same columns as a :class:`ClassRow`, averaged over the classes.
    :ivar by_size: ``(bin, AP)``, COCO's area bins; ``by_aspect``: ``(bin, AP)``.
    :ivar iou_thresholds: ``(T,)``; ``recall``: ``(T,)`` mean recall over the classes at each
        threshold (100 detections per image).
    """

    classes: list[ClassRow]
    overall: ClassRow
    by_size: list[tuple[str, float | None]]
    by_aspect: list[tuple[str, float | None]]
    iou_thresholds: np.ndarray
    recall: np.ndarray


def _quiet_call(function: Any, *args: Any) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args)


def _evaluate(content: dict[str, Any], detections: list[dict[str, Any]],
              ranges: Sequence[tuple[str, float, float]], area_of: str) -> COCOeval:
    """``COCOeval`` (box) over ``ranges`` of ``area_of`` (``"area"`` or ``"aspect"``, the
    annotation value the ranges bin)."""
    if area_of == "aspect":
        content = {**content, "annotations": [
            {**a, "area": a["bbox"][2] / max(a["bbox"][3], 1e-9)} for a in content["annotations"]]}
    coco_gt = coco_from_dict(content)
    coco_dt = _quiet_call(coco_gt.loadRes, detections)
    if area_of == "aspect":
        for ann in coco_dt.dataset["annotations"]:
            ann["area"] = ann["bbox"][2] / max(ann["bbox"][3], 1e-9)
    evaluator = COCOeval(coco_gt, coco_dt, "bbox")
    evaluator.params.imgIds = [image["id"] for image in content["images"]]
    evaluator.params.catIds = [c["id"] for c in content["categories"]]
    evaluator.params.iouThrs = IOU_THRESHOLDS
    evaluator.params.maxDets = [MAX_DETS]
    evaluator.params.areaRng = [[low, high] for _, low, high in ranges]
    evaluator.params.areaRngLbl = [name for name, _, _ in ranges]
    _quiet_call(evaluator.evaluate)
    _quiet_call(evaluator.accumulate)
    return evaluator


def _mean_ap(precision: np.ndarray) -> float | None:
    """Mean of the defined entries (``> -1``) of a precision slice; ``None`` if none."""
    defined = precision[precision > -1]
    return float(defined.mean()) if defined.size else None


def _row(name: str, precision: np.ndarray, num_gt: int, num_pred: int) -> ClassRow:
    """A row from ``precision`` ``(T, R, K, A)`` of one class or of all (``K`` axis kept)."""
    coco = IOU_THRESHOLDS >= 0.5
    at = {round(float(t), 2): i for i, t in enumerate(IOU_THRESHOLDS)}
    return ClassRow(name, _mean_ap(precision[coco, :, :, 0]), _mean_ap(precision[at[0.5], :, :, 0]),
                    _mean_ap(precision[at[0.75], :, :, 0]),
                    *(_mean_ap(precision[coco, :, :, a]) for a in (1, 2, 3)),
                    num_gt=num_gt, num_pred=num_pred)


def coco_tables(results: Sequence[ImageResult], classes: Sequence[str]) -> CocoTables:
    """The tables of ``results`` (ground truth and predictions in one frame per image).

    :param classes: the class names; label ``k`` is ``classes[k]``.
    """
    cat_ids = list(range(1, len(classes) + 1))
    results = list(results)
    content = gt_from_results(results, tuple(classes), cat_ids)
    detections = detections_from_results(results, cat_ids)
    num_gt = np.bincount(np.concatenate([r.gt_labels for r in results] + [np.zeros(0, int)])
                         .astype(np.int64), minlength=len(classes))
    num_pred = np.bincount(np.concatenate([r.pred_labels for r in results] + [np.zeros(0, int)])
                           .astype(np.int64), minlength=len(classes))
    if not detections and content["images"]:
        # pycocotools cannot load an empty result list; a zero-score box far outside the image
        # changes no value (a class with boxes and no detection has AP 0, as it should)
        detections = [{"image_id": content["images"][0]["id"], "category_id": cat_ids[0],
                       "bbox": [-1e4, -1e4, 1.0, 1.0], "score": 0.0}]
    if detections:
        sizes = _evaluate(content, detections, COCO_AREAS, "area")
        precision, recall = sizes.eval["precision"][..., -1], sizes.eval["recall"][..., -1]
        aspect = _evaluate(content, detections, ASPECTS, "aspect").eval["precision"][..., -1]
    else:
        precision = aspect = np.full((len(IOU_THRESHOLDS), 101, len(classes), 4), -1.0)
        recall = np.full((len(IOU_THRESHOLDS), len(classes), 4), -1.0)
    rows = [_row(name, precision[:, :, k:k + 1], int(num_gt[k]), int(num_pred[k]))
            for k, name in enumerate(classes)]
    coco = IOU_THRESHOLDS >= 0.5
    recall_all = recall[:, :, 0]
    return CocoTables(
        classes=rows,
        overall=_row("all", precision, int(num_gt.sum()), int(num_pred.sum())),
        by_size=[(name, _mean_ap(precision[coco, :, :, a]))
                 for a, (name, _, _) in enumerate(COCO_AREAS)],
        by_aspect=[(name, _mean_ap(aspect[coco, :, :, a]))
                   for a, (name, _, _) in enumerate(ASPECTS)],
        iou_thresholds=IOU_THRESHOLDS.copy(),
        recall=np.array([_mean_ap(recall_all[t]) or 0.0 for t in range(len(IOU_THRESHOLDS))]))
