"""Compact, picklable per-image records of ground truth and predictions for metrics.

Ground truth of a sample is stored in ``img_shape`` coordinates (after the test pipeline's
resize and flip); :func:`record_from_sample` maps it back to the original image with
:meth:`DetSample.boxes_to_original` (flip undone, a letterbox's ``pad_offset`` removed,
divided by ``scale_factor``; not clipped), the mapping the detector applied to the
predictions. Test pipelines may therefore resize (also letterbox), flip and pad, but not crop.

Instance masks, when a record asks for them, are kept as COCO RLEs in original pixels
(``{"size": [h, w], "counts": str}``, JSON-ready and a fraction of a bitmap's size): polygon
ground truth mapped with :meth:`DetSample.polygons_to_original` and rasterised, predicted
``(N, H, W)`` bool bitmaps encoded as they are.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import torch
import torch.distributed as dist
from pycocotools import mask as mask_utils
from torch import Tensor

from core.errors import DataError
from core.masks import PolygonMasks
from core.structures import DetSample, Instances

#: A COCO run-length encoding: ``{"size": [h, w], "counts": str}``.
Rle = dict[str, Any]


@attrs.define
class ImageResult:
    """One image's boxes in original pixels (NumPy, for pickling across ranks).

    :ivar img_id: image id.
    :ivar height: original height.
    :ivar width: original width.
    :ivar gt_boxes: ``(G, 4)`` float xyxy; ``gt_labels``: ``(G,)`` int.
    :ivar ignore_boxes: ``(I, 4)`` float xyxy; ``ignore_labels``: ``(I,)`` int.
    :ivar pred_boxes: ``(P, 4)`` float xyxy; ``pred_labels``: ``(P,)``; ``pred_scores``: ``(P,)``.
    :ivar gt_masks: ``G`` RLEs of the ground truth, or ``None`` (not recorded, or no masks).
    :ivar ignore_masks: ``I`` RLEs of the ignore regions, or ``None``.
    :ivar pred_masks: ``P`` RLEs of the predictions, or ``None``.
    """

    img_id: int
    height: int
    width: int
    gt_boxes: np.ndarray
    gt_labels: np.ndarray
    ignore_boxes: np.ndarray
    ignore_labels: np.ndarray
    pred_boxes: np.ndarray
    pred_labels: np.ndarray
    pred_scores: np.ndarray
    gt_masks: list[Rle] | None = None
    ignore_masks: list[Rle] | None = None
    pred_masks: list[Rle] | None = None


def encode_masks(masks: Tensor) -> list[Rle]:
    """COCO RLEs (``counts`` as str) of ``(N, H, W)`` bool (or 0/1) bitmaps."""
    if len(masks) == 0:
        return []
    # pycocotools encodes (H, W, N) uint8 in Fortran order (column-major, as COCO stores RLE)
    bitmaps = np.asfortranarray(masks.detach().cpu().numpy().astype(np.uint8).transpose(1, 2, 0))
    return _str_counts(mask_utils.encode(bitmaps))


def _str_counts(rles: list[dict[str, Any]]) -> list[Rle]:
    """RLEs with ``counts`` as str (pycocotools gives bytes)."""
    return [{"size": [int(v) for v in rle["size"]],
             "counts": rle["counts"].decode("ascii") if isinstance(rle["counts"], bytes)
             else rle["counts"]} for rle in rles]


def _original_masks(sample: DetSample, instances: Instances) -> list[Rle] | None:
    """RLEs of ground-truth polygon masks in original pixels (``None`` without masks)."""
    if instances.masks is None:
        return None
    if not isinstance(instances.masks, PolygonMasks):
        raise DataError(f"sample img_id={sample.img_id} ({sample.img_path}): ground-truth "
                        "masks must be polygons (PolygonMasks)")
    return _str_counts(sample.polygons_to_original(instances.masks).to_rle())


def _predicted_masks(sample: DetSample, masks: Tensor | PolygonMasks) -> list[Rle]:
    """RLEs of predicted ``(P, H_ori, W_ori)`` bitmaps."""
    shape = (int(sample.ori_shape[0]), int(sample.ori_shape[1]))
    if not isinstance(masks, Tensor) or masks.ndim != 3 or tuple(masks.shape[1:]) != shape:
        got = tuple(masks.shape) if isinstance(masks, Tensor) else type(masks).__name__
        raise DataError(f"sample img_id={sample.img_id} ({sample.img_path}): predicted masks "
                        f"must be an (N, {shape[0]}, {shape[1]}) bool tensor in original "
                        f"pixels, got {got}")
    return encode_masks(masks)


def _original_boxes(sample: DetSample, instances: Instances) -> np.ndarray:
    """``(N, 4)`` float32 boxes of ``instances`` (``img_shape`` pixels) in original pixels."""
    return sample.boxes_to_original(instances.boxes.detach().to("cpu", torch.float32)).numpy()


def record_from_sample(sample: DetSample, with_masks: bool = False) -> ImageResult:
    """The metric record of a sample whose ``pred`` is set (in original coordinates).

    :param with_masks: also record the masks (as RLEs) of the ground truth, the ignore
        regions and the predictions that have them.
    """
    if sample.pred is None:
        raise ValueError(
            f"sample img_id={sample.img_id} ({sample.img_path}) has no predictions to evaluate"
        )
    pred = sample.pred.to("cpu")
    scores = pred.scores if pred.scores is not None else torch.ones(len(pred))
    return ImageResult(
        img_id=int(sample.img_id),
        height=int(sample.ori_shape[0]),
        width=int(sample.ori_shape[1]),
        gt_boxes=_original_boxes(sample, sample.gt),
        gt_labels=sample.gt.labels.cpu().numpy(),
        ignore_boxes=_original_boxes(sample, sample.ignore),
        ignore_labels=sample.ignore.labels.cpu().numpy(),
        pred_boxes=pred.boxes.detach().float().numpy(),
        pred_labels=pred.labels.numpy(),
        pred_scores=scores.detach().float().numpy(),
        gt_masks=_original_masks(sample, sample.gt) if with_masks else None,
        ignore_masks=_original_masks(sample, sample.ignore) if with_masks else None,
        pred_masks=(_predicted_masks(sample, pred.masks)
                    if with_masks and pred.masks is not None else None),
    )


def gather_results(results: list[ImageResult]) -> list[ImageResult]:
    """Every rank's results (rank order) when ``torch.distributed`` is initialized, one per
    image id (a distributed sampler pads the last batch by repeating images)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        parts: list[list[ImageResult] | None] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, results)
        results = [result for part in parts for result in (part or [])]
    unique: dict[int, ImageResult] = {}
    for result in results:
        unique.setdefault(result.img_id, result)
    return list(unique.values())
