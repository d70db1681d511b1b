"""Test-time plots: per-class precision-recall curves and a confusion matrix.

Both take samples whose ``pred`` holds predictions in original image coordinates and whose
``gt``/``ignore`` are in ``img_shape`` coordinates (as the engine's test loop leaves them);
ground truth is mapped back to the original frame before matching.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torchvision.ops import box_iou

from core.errors import writing
from core.evaluation.voc_metric import average_precision
from core.structures import DetSample, Instances

#: Above this many classes the PR plot shows no per-class legend.
MAX_LEGEND_CLASSES = 20
PLOT_DPI = 100


@attrs.define
class PRCurve:
    """Precision and recall of one class over a descending score threshold.

    :ivar class_name: the class.
    :ivar precision: ``(D,)`` precision after each of the D detections, by descending score.
    :ivar recall: ``(D,)`` recall after each detection.
    :ivar scores: ``(D,)`` the detection scores, descending.
    :ivar ap: area under the interpolated curve (VOC all-point AP); NaN without ground truth.
    :ivar num_gt: ground-truth boxes of the class (ignore regions excluded).
    """

    class_name: str
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray
    ap: float
    num_gt: int


def _check_samples(samples: Sequence[DetSample], num_classes: int) -> None:
    for sample in samples:
        where = f"sample img_id={sample.img_id} ({sample.img_path})"
        if sample.pred is None:
            raise ValueError(f"{where} has no predictions")
        if sample.pred.scores is None:
            raise ValueError(f"{where}: predictions have no scores")
        for name, instances in (("gt", sample.gt), ("pred", sample.pred)):
            labels = instances.labels
            if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
                raise ValueError(f"{where}: {name} label outside 0..{num_classes - 1}")


def _in_original_frame(
    samples: Sequence[DetSample], num_classes: int
) -> Iterator[tuple[Instances, Instances, Instances]]:
    """Check every sample, then yield its ``(gt, ignore, pred)`` in original image coordinates.

    Boxes are ``(N, 4)`` xyxy, ``pred`` on the CPU; samples are all checked before the first
    yield, so a bad one raises before any work is done.
    """
    _check_samples(samples, num_classes)
    for sample in samples:
        gt = sample.instances_to_original(sample.gt.to("cpu"))
        ignore = sample.instances_to_original(sample.ignore.to("cpu"))
        yield gt, ignore, sample.pred.to("cpu")  # type: ignore[union-attr]


def _iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(len(a), len(b))`` IoU, also for empty inputs."""
    if len(a) == 0 or len(b) == 0:
        return torch.zeros((len(a), len(b)))
    return box_iou(a.float(), b.float())


def _match_class(
    pred: Instances, gt_boxes: torch.Tensor, ignore_boxes: torch.Tensor, iou_thr: float
) -> tuple[np.ndarray, np.ndarray]:
    """VOC matching of one class in one image.

    :returns: scores ``(P,)`` and outcomes ``(P,)`` (1 true positive, 0 false positive, -1 on an
        ignore region: counted as neither).
    """
    order = torch.argsort(pred.scores, descending=True)  # type: ignore[arg-type]
    boxes, scores = pred.boxes[order], pred.scores[order]  # type: ignore[index]
    outcome = np.zeros(len(boxes), dtype=np.int64)
    taken = np.zeros(len(gt_boxes), dtype=bool)
    gt_iou = _iou(boxes, gt_boxes)
    ignore_iou = _iou(boxes, ignore_boxes)
    for index in range(len(boxes)):
        best = int(gt_iou[index].argmax()) if len(gt_boxes) else -1
        if best >= 0 and gt_iou[index, best] >= iou_thr:
            outcome[index] = 0 if taken[best] else 1
            taken[best] = True
        elif len(ignore_boxes) and ignore_iou[index].max() >= iou_thr:
            outcome[index] = -1
    return scores.numpy(), outcome


def compute_pr_curves(
    samples: Sequence[DetSample], classes: Sequence[str], iou_thr: float = 0.5
) -> list[PRCurve]:
    """One :class:`PRCurve` per class (VOC matching at ``iou_thr``)."""
    scores: list[list[np.ndarray]] = [[] for _ in classes]
    outcomes: list[list[np.ndarray]] = [[] for _ in classes]
    num_gt = np.zeros(len(classes), dtype=np.int64)
    for gt, ignore, pred in _in_original_frame(samples, len(classes)):
        for label in range(len(classes)):
            gt_boxes = gt.boxes[gt.labels == label]
            num_gt[label] += len(gt_boxes)
            class_scores, outcome = _match_class(
                pred[pred.labels == label], gt_boxes, ignore.boxes[ignore.labels == label], iou_thr
            )
            scores[label].append(class_scores)
            outcomes[label].append(outcome)
    curves = []
    for label, name in enumerate(classes):
        class_scores = np.concatenate(scores[label]) if scores[label] else np.zeros(0)
        outcome = np.concatenate(outcomes[label]) if outcomes[label] else np.zeros(0, np.int64)
        order = np.argsort(-class_scores, kind="stable")
        class_scores, outcome = class_scores[order], outcome[order]
        counted = outcome >= 0
        class_scores, outcome = class_scores[counted], outcome[counted]
        true_pos = np.cumsum(outcome == 1)
        false_pos = np.cumsum(outcome == 0)
        precision = true_pos / np.maximum(true_pos + false_pos, 1)
        recall = true_pos / num_gt[label] if num_gt[label] else np.zeros_like(precision)
        ap = average_precision(recall, precision, "area") if num_gt[label] else float("nan")
        curves.append(PRCurve(name, precision, recall, class_scores, ap, int(num_gt[label])))
    return curves


def compute_confusion_matrix(
    samples: Sequence[DetSample], num_classes: int, iou_thr: float = 0.5, score_thr: float = 0.3
) -> np.ndarray:
    """Count ground truth against predictions.

    Predictions scoring at least ``score_thr`` are matched one-to-one to ground-truth boxes of
    any class, greedily by descending IoU (pairs below ``iou_thr`` never match).

    :returns: ``(C + 1, C + 1)`` int64 counts: ``[g, p]`` ground truth of class g matched by a
        prediction of class p; ``[g, C]`` ground truth nobody found; ``[C, p]`` predictions of
        class p matching no ground truth (those on ignore regions are left out).
    """
    background = num_classes
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for gt, ignore, pred in _in_original_frame(samples, num_classes):
        pred = pred[pred.scores >= score_thr]  # type: ignore[operator]
        iou = _iou(gt.boxes, pred.boxes)
        gt_done = np.zeros(len(gt), dtype=bool)
        pred_done = np.zeros(len(pred), dtype=bool)
        pairs = torch.nonzero(iou >= iou_thr).tolist()
        pairs.sort(key=lambda pair: -float(iou[pair[0], pair[1]]))
        for g, p in pairs:
            if not gt_done[g] and not pred_done[p]:
                gt_done[g] = pred_done[p] = True
                matrix[int(gt.labels[g]), int(pred.labels[p])] += 1
        for g in np.nonzero(~gt_done)[0]:
            matrix[int(gt.labels[g]), background] += 1
        on_ignore = (_iou(pred.boxes, ignore.boxes) >= iou_thr).any(dim=1).numpy()
        for p in np.nonzero(~pred_done & ~on_ignore)[0]:
            matrix[background, int(pred.labels[p])] += 1
    return matrix


def _save(figure: Figure, out_file: str | Path) -> Path:
    """Write ``figure`` as PNG; :class:`~core.errors.RunFileError` naming the file
    when it cannot be written."""
    path = Path(out_file)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        FigureCanvasAgg(figure)
        figure.savefig(path, dpi=PLOT_DPI)
    return path


def save_pr_curves(
    samples: Sequence[DetSample],
    classes: Sequence[str],
    out_file: str | Path,
    iou_thr: float = 0.5,
) -> list[PRCurve]:
    """Plot every class's precision-recall curve into one PNG; returns the curves."""
    curves = compute_pr_curves(samples, classes, iou_thr)
    figure = Figure(figsize=(6, 5), layout="constrained")
    axes = figure.add_subplot()
    for curve in curves:
        if curve.num_gt == 0:
            continue
        axes.plot(
            np.concatenate([[0.0], curve.recall]),
            np.concatenate([[1.0], curve.precision]),
            label=f"{curve.class_name} (AP {curve.ap:.3f})",
            linewidth=1.5,
        )
    aps = [c.ap for c in curves if c.num_gt]
    mean_ap = float(np.mean(aps)) if aps else float("nan")
    axes.set(
        xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
        title=f"precision-recall at IoU {iou_thr:g}: mAP {mean_ap:.3f}",
    )
    axes.grid(alpha=0.3)
    if 0 < len(aps) <= MAX_LEGEND_CLASSES:
        axes.legend(loc="best", fontsize="small")
    _save(figure, out_file)
    return curves


def save_confusion_matrix(
    samples: Sequence[DetSample],
    classes: Sequence[str],
    out_file: str | Path,
    iou_thr: float = 0.5,
    score_thr: float = 0.3,
) -> np.ndarray:
    """Plot the confusion matrix (rows normalised, counts written) as PNG; returns the counts."""
    matrix = compute_confusion_matrix(samples, len(classes), iou_thr, score_thr)
    names = [*classes, "background"]
    side = min(3 + 0.45 * len(names), 20)
    figure = Figure(figsize=(side + 1, side), layout="constrained")
    axes = figure.add_subplot()
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = matrix / np.maximum(rows, 1)
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, fraction=0.046, label="fraction of the row")
    ticks = np.arange(len(names))
    axes.set_xticks(ticks, names, rotation=45, ha="right")
    axes.set_yticks(ticks, names)
    axes.set(
        xlabel="prediction", ylabel="ground truth",
        title=f"confusion matrix (IoU {iou_thr:g}, score {score_thr:g})",
    )
    if len(names) <= MAX_LEGEND_CLASSES + 1:
        for (row, col), count in np.ndenumerate(matrix):
            if count:
                color = "white" if normalised[row, col] > 0.5 else "black"
                axes.text(col, row, str(count), ha="center", va="center", color=color,
                          fontsize="small")
    _save(figure, out_file)
    return matrix
