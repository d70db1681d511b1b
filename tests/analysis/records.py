"""Building :class:`ImageResult` records by hand for the analysis tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.evaluation.records import ImageResult


def _boxes(rows: Sequence[Sequence[float]]) -> np.ndarray:
    return np.asarray(rows, np.float32).reshape(-1, 4)


def record(img_id: int, gt: Sequence[tuple[Sequence[float], int]] = (),
           preds: Sequence[tuple[Sequence[float], int, float]] = (),
           crowd: Sequence[tuple[Sequence[float], int]] = (), size: int = 100) -> ImageResult:
    """One image: ``gt``/``crowd`` as ``(xyxy, label)``, ``preds`` as ``(xyxy, label, score)``."""
    return ImageResult(
        img_id=img_id, height=size, width=size,
        gt_boxes=_boxes([b for b, _ in gt]), gt_labels=np.array([c for _, c in gt], np.int64),
        ignore_boxes=_boxes([b for b, _ in crowd]),
        ignore_labels=np.array([c for _, c in crowd], np.int64),
        pred_boxes=_boxes([b for b, _, _ in preds]),
        pred_labels=np.array([c for _, c, _ in preds], np.int64),
        pred_scores=np.array([s for _, _, s in preds], np.float32))


def random_records(seed: int, num_images: int = 40, num_classes: int = 3) -> list[ImageResult]:
    """Images with every kind of error: detections near each box (shifted, relabelled,
    duplicated, dropped), detections on background, and a crowd region in the lower right
    corner (no box there) holding a few detections."""
    rng = np.random.default_rng(seed)
    results = []
    for img_id in range(num_images):
        gt, preds, crowd = [], [], []
        for _ in range(rng.integers(0, 5)):
            x, y = rng.uniform(0, 100, 2)
            w, h = rng.uniform(8, 40, 2)
            box, label = [x, y, x + w, y + h], int(rng.integers(num_classes))
            gt.append((box, label))
            for _ in range(rng.integers(0, 3)):
                shift = rng.normal(0, rng.choice([0.05, 0.3])) * np.array([w, h, w, h])
                wrong = rng.random() < 0.2
                pred_label = int((label + 1) % num_classes) if wrong else label
                preds.append((list(np.array(box) + shift), pred_label, float(rng.random())))
        for _ in range(rng.integers(0, 3)):
            x, y = rng.uniform(0, 120, 2)
            preds.append(([x, y, x + 15, y + 15], int(rng.integers(num_classes)),
                          float(rng.random() * 0.5)))
        if rng.random() < 0.3:
            label = int(rng.integers(num_classes))
            crowd.append(([160, 160, 200, 200], label))
            preds.append(([165, 165, 190, 190], label, float(rng.random())))
        results.append(record(img_id, gt, preds, crowd, size=200))
    return results
