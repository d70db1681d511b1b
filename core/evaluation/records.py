"""Compact, picklable per-image records of ground truth and predictions for metrics.

Ground truth of a sample is stored in ``img_shape`` coordinates (after the test pipeline's
resize and flip); :func:`record_from_sample` maps it back to the original image with
:meth:`DetSample.boxes_to_original` (flip undone, a letterbox's ``pad_offset`` removed,
divided by ``scale_factor``; not clipped), the mapping the detector applied to the
predictions. Test pipelines may therefore resize (also letterbox), flip and pad, but not crop.
"""

from __future__ import annotations

import attrs
import numpy as np
import torch
import torch.distributed as dist

from core.structures import DetSample, Instances


@attrs.define
class ImageResult:
    """One image's boxes in original pixels (NumPy, for pickling across ranks).

    :ivar img_id: image id.
    :ivar height: original height.
    :ivar width: original width.
    :ivar gt_boxes: ``(G, 4)`` float xyxy; ``gt_labels``: ``(G,)`` int.
    :ivar ignore_boxes: ``(I, 4)`` float xyxy; ``ignore_labels``: ``(I,)`` int.
    :ivar pred_boxes: ``(P, 4)`` float xyxy; ``pred_labels``: ``(P,)``; ``pred_scores``: ``(P,)``.
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


def _original_boxes(sample: DetSample, instances: Instances) -> np.ndarray:
    """``(N, 4)`` float32 boxes of ``instances`` (``img_shape`` pixels) in original pixels."""
    return sample.boxes_to_original(instances.boxes.detach().to("cpu", torch.float32)).numpy()


def record_from_sample(sample: DetSample) -> ImageResult:
    """The metric record of a sample whose ``pred`` is set (in original coordinates)."""
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
