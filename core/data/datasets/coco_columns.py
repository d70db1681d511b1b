"""COCO annotations as columns: the per-annotation checks of
:class:`~core.data.datasets.coco.CocoDataset` done with NumPy over all annotations at once.

Python touches each annotation only to read its fields; the checks give every annotation a
status (:data:`OK` ... :data:`OUTSIDE`), and messages are built afterwards for the bad
ones only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: annotation statuses: kept as is, kept clipped, then the reasons to drop one (a later
#: check only sees what the earlier ones kept).
OK, CLIPPED, UNKNOWN_CATEGORY, UNSELECTED, MALFORMED, DEGENERATE, OUTSIDE = range(7)
#: the status of an annotation dropped for its mask (named when its mask is read).
BAD_MASK = 7
#: statuses that are counted and named (the others are kept or dropped silently).
REPORTED = (CLIPPED, UNKNOWN_CATEGORY, MALFORMED, DEGENERATE, OUTSIDE)
#: ``label`` of an annotation whose category is known but not selected / unknown.
UNSELECTED_LABEL, UNKNOWN_LABEL = -1, -2


def column(rows: list[Any], key: str, default: Any = None) -> list[Any]:
    """``row.get(key, default)`` of every row (``default`` for rows that are no dict)."""
    return [row.get(key, default) if isinstance(row, dict) else default for row in rows]


def box_from_xywh(value: Any) -> list[float] | None:
    """``[x, y, w, h]`` -> ``[x1, y1, x2, y2]``; ``None`` if not four finite numbers."""
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        return None
    try:
        x, y, w, h = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return None
    return [x, y, x + w, y + h]


def xyxy_from_xywh(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(M, 4)`` float64 ``[x1, y1, x2, y2]`` of ``M`` COCO bboxes and the ``(M,)`` bool
    mask of those that are not four finite numbers (their rows are NaN), as
    :func:`box_from_xywh` reads them."""
    try:
        array = np.asarray(values)
    except (TypeError, ValueError):  # rows of different lengths
        array = None
    if array is None or array.dtype.kind not in "biuf" or array.shape != (len(values), 4):
        rows = [box_from_xywh(value) for value in values]
        malformed: np.ndarray = np.array([row is None for row in rows], dtype=bool)
        nan = [math.nan] * 4
        boxes = np.array([nan if row is None else row for row in rows], dtype=np.float64)
        return boxes.reshape(-1, 4), malformed
    boxes = array.astype(np.float64)
    malformed = np.logical_not(np.isfinite(boxes).all(axis=1))
    boxes[:, 2:] += boxes[:, :2]
    boxes[malformed] = math.nan
    return boxes, malformed


def check_boxes(boxes: np.ndarray, widths: np.ndarray,
                heights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`~core.data.datasets.coco.check_box`: ``(M,)`` statuses (:data:`OK`,
    :data:`CLIPPED`, :data:`DEGENERATE`, :data:`OUTSIDE`) and the ``(M, 4)`` float64 boxes
    clipped to their ``(M,)`` image sizes, with the same comparisons as ``min``/``max``."""
    limits = np.stack([widths, heights, widths, heights], axis=1).astype(np.float64)
    raised = np.where(boxes < 0.0, 0.0, boxes)
    clipped = np.where(raised > limits, limits, raised)
    degenerate = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    outside = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
    status = np.where((clipped != boxes).any(axis=1), CLIPPED, OK)
    status[outside] = OUTSIDE
    status[degenerate] = DEGENERATE
    return status, clipped


def path_joiner(folder: Path) -> Callable[[Any], str]:
    """``str(folder / str(name))``, without building a ``Path`` for plain file names."""
    base = str(folder)
    prefix = "" if base == "." else base if base.endswith(os.sep) else base + os.sep

    def join(name: Any) -> str:
        text = str(name)
        if text and text != "." and "/" not in text and os.sep not in text:
            return prefix + text
        return str(folder / text)

    return join
