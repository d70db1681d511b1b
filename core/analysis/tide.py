"""The TIDE error breakdown (Bolya et al., "TIDE: A General Toolbox for Identifying Object
Detection Errors", ECCV 2020), computed as the ``tidecv`` package computes it.

Every detection that is not a true positive at the foreground IoU ``pos_thr`` (0.5) gets one
error type, tested in this order:

* ``loc`` (localisation): its IoU with a ground-truth box of its class is in
  ``[bg_thr, pos_thr]``;
* ``cls`` (classification): IoU >= ``pos_thr`` with a box of another class;
* ``dupe`` (duplicate): IoU >= ``pos_thr`` with a box of its class already matched by a
  higher-scored detection;
* ``bkg`` (background): IoU <= ``bg_thr`` (0.1) with every box;
* ``both``: anything else (wrong class and poorly placed).

A ground-truth box left unmatched that no ``loc``/``cls`` error points to is ``miss``. The dAP
of a type is the AP gained when its errors are fixed by an oracle (recomputed COCO-style,
101-point AP at ``pos_thr``, mean over classes, in AP points 0..100): a ``loc``/``cls`` error
becomes the true positive of its box (only the highest-scored one per box, the others and
those of already-matched boxes are removed), ``dupe``/``bkg``/``both`` detections are
removed, a ``miss`` is taken out of the ground-truth count. Negative gains (ties of the 101
recall bins) are reported as 0, as TIDE does. The special types ``false_pos`` (every false
positive scored below every true positive) and ``false_neg`` (every unmatched box removed)
bound what precision and recall could give.

Crowd regions follow COCO: a detection that is not a true positive and lies more than
``pos_thr`` inside a crowd region of its class is ignored (neither an error nor a point of the
AP). ``tidecv`` still gives such a detection an error type; it matters only when the
detection also overlaps a real box.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

import attrs
import numpy as np

from core.analysis.geometry import box_iof, box_iou
from core.evaluation.records import ImageResult

#: The main error types, in TIDE's order, and their names.
ERROR_TYPES = ("cls", "loc", "both", "dupe", "bkg", "miss")
ERROR_NAMES = {"cls": "classification", "loc": "localisation", "both": "cls + loc",
               "dupe": "duplicate", "bkg": "background", "miss": "missed"}
#: Bounds: perfect precision (``false_pos``) and perfect recall (``false_neg``).
SPECIAL_TYPES = ("false_pos", "false_neg")
#: The kinds of a detection: a true positive, an error type, or ignored (crowd region).
TRUE_POSITIVE, IGNORED = "tp", "ignored"
RECALL_BINS = np.arange(101) / 100  # COCO's 101 recall points (as x / 100, like tidecv)


def tide_ap(scores: np.ndarray, is_tp: np.ndarray, num_gt: int) -> float:
    """101-point interpolated AP (0..100) of one class, as COCO and TIDE integrate it.

    :param scores: ``(D,)`` detection scores (ties keep their order).
    :param is_tp: ``(D,)`` bool, whether each detection is a true positive.
    :param num_gt: ground-truth boxes of the class (0 gives AP 0).
    """
    if num_gt == 0 or len(scores) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    tp = np.asarray(is_tp, bool)[order]
    true_count = np.cumsum(tp)
    precision = true_count / np.arange(1, len(tp) + 1)
    recall = true_count / num_gt
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    index = np.searchsorted(recall, RECALL_BINS, side="left")
    values = np.where(index < len(precision), precision[np.minimum(index, len(tp) - 1)], 0.0)
    return float(values.sum() / len(values) * 100)


@attrs.define
class ImageErrors:
    """The TIDE verdict on one image.

    :ivar img_id: the image.
    :ivar pred_index: ``(P,)`` indices into the record's predictions, by descending score (at
        most ``max_dets``).
    :ivar pred_kind: ``(P,)`` ``"tp"``, an error type of :data:`ERROR_TYPES` or ``"ignored"``.
    :ivar gt_matched: ``(G,)`` bool, the box has a true positive.
    :ivar gt_missed: ``(G,)`` bool, the box is a ``miss`` error.
    """

    img_id: int
    pred_index: np.ndarray
    pred_kind: list[str]
    gt_matched: np.ndarray
    gt_missed: np.ndarray


@attrs.define
class TideReport:
    """The breakdown of a set of images (AP values in points, 0..100).

    :ivar classes: the class names (label ``k`` is ``classes[k]``).
    :ivar ap: mean AP at ``pos_thr`` over the classes with ground truth or detections.
    :ivar class_ap: AP of each such class.
    :ivar dap: dAP of each type of :data:`ERROR_TYPES` and :data:`SPECIAL_TYPES`.
    :ivar class_dap: ``class -> type -> dAP`` (the class's AP gain).
    :ivar counts: errors of each main type.
    :ivar class_counts: ``class -> type -> errors`` (a detection's class, a missed box's).
    :ivar images: the verdict per image, in the order of the records.
    """

    classes: tuple[str, ...]
    pos_thr: float
    bg_thr: float
    ap: float
    class_ap: dict[str, float]
    dap: dict[str, float]
    class_dap: dict[str, dict[str, float]]
    counts: dict[str, int]
    class_counts: dict[str, dict[str, int]]
    images: list[ImageErrors]


@attrs.define
class _Error:
    """One error: ``label`` is the detection's class (a box's for ``miss``); ``gt`` the global
    id of the box a ``loc``/``cls`` error would become the true positive of (-1: none)."""

    kind: str
    label: int
    score: float
    uid: int
    gt: int = -1
    gt_label: int = -1
    gt_was_matched: bool = False


@attrs.define
class _Collector:
    """What the images add up to: the points of the AP and the errors."""

    num_gt: Counter = attrs.field(factory=Counter)
    points: dict[int, list[tuple[float, bool]]] = attrs.field(factory=lambda: defaultdict(list))
    true_positives: dict[int, list[float]] = attrs.field(factory=lambda: defaultdict(list))
    unmatched: Counter = attrs.field(factory=Counter)
    errors: list[_Error] = attrs.field(factory=list)
    best: dict[int, tuple[float, int]] = attrs.field(factory=dict)
    next_uid: int = 0
    next_gt: int = 0

    def point(self, label: int, score: float, tp: bool) -> None:
        self.points[label].append((score, tp))
        if tp:
            self.true_positives[label].append(score)

    def candidate(self, gt: int, score: float, uid: int) -> None:
        """A ``loc``/``cls`` error that could fix box ``gt``: keep the highest score (the
        first of equal ones)."""
        if gt not in self.best or self.best[gt][0] < score:
            self.best[gt] = (score, uid)


def _greedy_match(cls_iou: np.ndarray, pos_thr: float) -> np.ndarray:
    """``(P,)`` matched box of each detection (-1: none), detections by descending score,
    each taking its highest-IoU free box of its class if the IoU is at least ``pos_thr``.

    :param cls_iou: ``(P, G)`` IoU, zero between different classes.
    """
    matched = np.full(cls_iou.shape[0], -1)
    if cls_iou.shape[1] == 0:
        return matched
    free = cls_iou.copy()
    for p in range(len(free)):
        g = int(free[p].argmax())
        if free[p, g] >= pos_thr:
            matched[p] = g
            free[:, g] = 0.0
    return matched


def _ignored(boxes: np.ndarray, labels: np.ndarray, result: ImageResult,
             pos_thr: float) -> np.ndarray:
    """``(P,)`` bool: the detection lies more than ``pos_thr`` inside a crowd region of its
    class."""
    if len(result.ignore_boxes) == 0 or len(boxes) == 0:
        return np.zeros(len(boxes), bool)
    inside = box_iof(boxes, result.ignore_boxes) > pos_thr
    same = labels[:, None] == np.asarray(result.ignore_labels)[None, :]
    return (inside & same).any(axis=1)


def _error_of(p: int, iou: np.ndarray, same: np.ndarray, gt_matched: np.ndarray,
              pos_thr: float, bg_thr: float) -> tuple[str, int]:
    """The error type of false positive ``p`` and the box it refers to (-1: none)."""
    if iou.shape[1] == 0:
        return "bkg", -1
    cls_iou = iou[p] * same[p]
    g = int(cls_iou.argmax())
    if bg_thr <= cls_iou[g] <= pos_thr:
        return "loc", g
    other = iou[p] * ~same[p]
    g = int(other.argmax())
    if other[g] >= pos_thr:
        return "cls", g
    if (cls_iou * gt_matched).max() >= pos_thr:
        return "dupe", -1
    if iou[p].max() <= bg_thr:
        return "bkg", -1
    return "both", -1


def _image(result: ImageResult, collector: _Collector, pos_thr: float, bg_thr: float,
           max_dets: int) -> ImageErrors:
    """Match one image, add its points and errors to ``collector``; its verdict."""
    gt_labels = np.asarray(result.gt_labels, np.int64)
    num_gt = len(gt_labels)
    gt_ids = np.arange(collector.next_gt, collector.next_gt + num_gt)
    collector.next_gt += num_gt
    collector.num_gt.update(gt_labels.tolist())
    order = np.argsort(-np.asarray(result.pred_scores, np.float64), kind="stable")[:max_dets]
    boxes = np.asarray(result.pred_boxes, np.float64).reshape(-1, 4)[order]
    labels = np.asarray(result.pred_labels, np.int64)[order]
    scores = np.asarray(result.pred_scores, np.float64)[order]
    iou = box_iou(boxes, result.gt_boxes)
    same = labels[:, None] == gt_labels[None, :]
    matched = _greedy_match(iou * same, pos_thr)
    gt_matched = np.zeros(num_gt, bool)
    gt_matched[matched[matched >= 0]] = True
    ignored = _ignored(boxes, labels, result, pos_thr) & (matched < 0)
    usable = np.zeros(num_gt, bool)
    kinds = []
    for p in range(len(order)):
        uid = collector.next_uid
        collector.next_uid += 1
        label, score = int(labels[p]), float(scores[p])
        if matched[p] >= 0:
            collector.point(label, score, True)
            kinds.append(TRUE_POSITIVE)
            continue
        if ignored[p]:
            kinds.append(IGNORED)
            continue
        collector.point(label, score, False)
        kind, g = _error_of(p, iou, same, gt_matched, pos_thr, bg_thr)
        kinds.append(kind)
        error = _Error(kind, label, score, uid)
        if g >= 0:
            error.gt, error.gt_label = int(gt_ids[g]), int(gt_labels[g])
            error.gt_was_matched = bool(gt_matched[g])
            if not gt_matched[g]:
                usable[g] = True
                collector.candidate(error.gt, score, uid)
        collector.errors.append(error)
    missed = ~gt_matched & ~usable
    collector.unmatched.update(gt_labels[~gt_matched].tolist())
    for g in np.flatnonzero(missed):
        collector.errors.append(_Error("miss", int(gt_labels[g]), 0.0, -1, gt=int(gt_ids[g])))
    return ImageErrors(result.img_id, order, kinds, gt_matched, missed)


def _fixed_point(error: _Error, best: dict[int, tuple[float, int]]) -> tuple[int, bool] | None:
    """``(label, is_tp)`` of a fixed ``loc``/``cls`` error, ``None`` when fixing removes it."""
    if error.kind not in ("loc", "cls") or error.gt_was_matched:
        return None
    if best[error.gt][1] != error.uid:
        return None
    return (error.gt_label if error.kind == "cls" else error.label), True


def _class_aps(points: dict[int, list[tuple[float, bool]]], num_gt: Counter,
               labels: Sequence[int]) -> dict[int, float]:
    """AP of each label that has points or ground truth (as TIDE averages them)."""
    aps = {}
    for label in labels:
        data = points.get(label, [])
        if data or num_gt[label] != 0:
            scores = np.array([s for s, _ in data], np.float64)
            tps = np.array([t for _, t in data], bool)
            aps[label] = tide_ap(scores, tps, num_gt[label])
    return aps


def _fixed_aps(collector: _Collector, labels: Sequence[int],
               fixes: Callable[[_Error], bool] = lambda e: False,
               transform: Callable[[float, bool], float] | None = None,
               drop_unmatched: bool = False) -> dict[int, float]:
    """Per-label AP after fixing the errors ``fixes`` selects (false positives first, then the
    true positives, as tidecv orders them); ``transform`` rescores every point,
    ``drop_unmatched`` removes every unmatched box from the counts."""
    points: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    num_gt = Counter(collector.num_gt)
    for error in collector.errors:
        if error.kind == "miss":
            if fixes(error):
                num_gt[error.label] -= 1
            continue
        if fixes(error):
            fixed = _fixed_point(error, collector.best)
            if fixed is not None:
                points[fixed[0]].append((error.score, True))
            continue
        points[error.label].append((error.score, False))
    for label, scores in collector.true_positives.items():
        points[label] += [(score, True) for score in scores]
    if drop_unmatched:
        num_gt.subtract(collector.unmatched)
    if transform is not None:
        points = defaultdict(list, {k: [(transform(s, t), t) for s, t in v]
                                    for k, v in points.items()})
    return _class_aps(points, num_gt, labels)


def _mean(values: dict[int, float]) -> float:
    return float(np.mean(list(values.values()))) if values else 0.0


def tide_breakdown(results: Sequence[ImageResult], classes: Sequence[str],
                   pos_thr: float = 0.5, bg_thr: float = 0.1,
                   max_dets: int = 100) -> TideReport:
    """The TIDE breakdown of ``results`` (see the module docstring).

    :param results: ground truth (crowd regions as ``ignore_*``) and predictions per image,
        boxes xyxy in one frame.
    :param classes: the class names (labels index them).
    :param pos_thr: foreground IoU (a true positive from this IoU on).
    :param bg_thr: background IoU (a false positive up to this IoU with every box is ``bkg``).
    :param max_dets: detections per image considered, highest scores first.
    """
    collector = _Collector()
    images = [_image(r, collector, pos_thr, bg_thr, max_dets) for r in results]
    labels = sorted(set(collector.num_gt) | set(collector.points))
    base = _class_aps(collector.points, collector.num_gt, labels)
    base_map = _mean(base)
    fixed = {kind: _fixed_aps(collector, labels, lambda e, k=kind: e.kind == k)
             for kind in ERROR_TYPES}
    fixed["false_pos"] = _fixed_aps(collector, labels,
                                    transform=lambda score, tp: 1.0 if tp else 0.0)
    fixed["false_neg"] = _fixed_aps(collector, labels, drop_unmatched=True)
    dap = {kind: max(_mean(aps) - base_map, 0.0) for kind, aps in fixed.items()}
    name = {label: classes[label] if 0 <= label < len(classes) else str(label)
            for label in labels}
    class_dap = {name[label]: {kind: max(aps.get(label, 0.0) - base[label], 0.0)
                               for kind, aps in fixed.items()} for label in base}
    counts = Counter(e.kind for e in collector.errors)
    class_counts: dict[str, dict[str, int]] = {name[label]: dict.fromkeys(ERROR_TYPES, 0)
                                               for label in labels}
    for error in collector.errors:
        class_counts[name[error.label]][error.kind] += 1
    return TideReport(
        classes=tuple(classes), pos_thr=pos_thr, bg_thr=bg_thr, ap=base_map,
        class_ap={name[label]: ap for label, ap in base.items()},
        dap=dap, class_dap=class_dap,
        counts={kind: counts.get(kind, 0) for kind in ERROR_TYPES},
        class_counts=class_counts, images=images)
