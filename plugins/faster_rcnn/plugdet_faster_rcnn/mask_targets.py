"""Training targets of a RoI mask head: each positive RoI's matched ground-truth mask seen
through the RoI and rasterised on the head's output grid."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from core.api import DataError, DetSample, PolygonMasks
from plugdet_faster_rcnn.roi_path import RoITargets


def gt_polygon_masks(sample: DetSample) -> PolygonMasks:
    """The polygon masks of ``sample.gt``.

    :raises DataError: the sample has no masks (a dataset read without them)."""
    masks = sample.gt.masks
    if not isinstance(masks, PolygonMasks):
        raise DataError(
            f"sample img_id={sample.img_id} ({sample.img_path or 'generated'}): a mask head "
            f"needs ground-truth instance masks, got {type(masks).__name__} (read the dataset "
            "with masks, e.g. with_mask = true)")
    return masks


def polygon_mask_targets(targets: RoITargets, samples: Sequence[DetSample], size: int
                         ) -> Tensor:
    """``(P, size, size)`` float32 {0, 1} targets of the positive RoIs, in their order: the
    gt mask each positive was matched to (``targets.pos_gt_inds``), mapped box corner to
    corner onto the grid and filled (:meth:`~core.api.PolygonMasks.crop_and_resize`).

    :param targets: sampled RoIs in ``img_shape`` pixels.
    :param samples: the batch's samples, gt masks in ``img_shape`` pixels.
    :raises DataError: a sample has no gt masks.
    """
    pos_rois = targets.pos_rois
    out = pos_rois.new_zeros((len(pos_rois), size, size))
    images = pos_rois[:, 0].long()
    for index, sample in enumerate(samples):
        masks = gt_polygon_masks(sample)
        rows = (images == index).nonzero().flatten()
        if len(rows):
            out[rows] = masks.crop_and_resize(pos_rois[rows, 1:], targets.pos_gt_inds[rows],
                                              size).to(out.dtype)
    return out


def class_channel(mask_logits: Tensor, labels: Tensor) -> Tensor:
    """``(K, S, S)`` the channel of each RoI's class from ``(K, C, S, S)`` logits."""
    return mask_logits[torch.arange(len(labels), device=labels.device), labels]
