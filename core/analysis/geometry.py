"""Pairwise overlaps of axis-aligned boxes (NumPy)."""

from __future__ import annotations

import numpy as np


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` intersection areas of ``(N, 4)`` and ``(M, 4)`` xyxy boxes."""
    left_top = np.maximum(a[:, None, :2], b[None, :, :2])
    right_bottom = np.minimum(a[:, None, 2:], b[None, :, 2:])
    size = np.clip(right_bottom - left_top, 0.0, None)
    return size[..., 0] * size[..., 1]


def box_area(boxes: np.ndarray) -> np.ndarray:
    """``(N,)`` areas of ``(N, 4)`` xyxy boxes (negative sizes count as 0)."""
    size = np.clip(boxes[:, 2:] - boxes[:, :2], 0.0, None)
    return size[:, 0] * size[:, 1]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` intersection over union of ``(N, 4)`` and ``(M, 4)`` xyxy boxes (0 where
    the union is empty)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    inter = _intersection(a, b)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def box_iof(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` intersection over the area of each box of ``a``: how much of a detection
    lies in a crowd region ``b`` (COCO's crowd overlap)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    inter = _intersection(a, b)
    area = np.broadcast_to(box_area(a)[:, None], inter.shape)
    return np.divide(inter, area, out=np.zeros_like(inter), where=area > 0)
