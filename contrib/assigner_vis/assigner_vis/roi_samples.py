"""Ask a two-stage detector's RoI head which proposals it samples as positives and negatives."""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch import Tensor, nn

from core.api import DetBatch, DetSample


@attrs.define
class RoISamples:
    """The RoIs one image trains its RoI head on (gt boxes added as proposals included).

    :ivar sample: the sample (``gt`` in ``img_shape`` pixels).
    :ivar pos_boxes: ``(P, 4)`` positive RoIs, network-input pixels.
    :ivar pos_gt_inds: ``(P,)`` int64 index into ``sample.gt`` of each positive's box.
    :ivar neg_boxes: ``(Q, 4)`` negative RoIs, network-input pixels.
    :ivar pos_boxes_original: ``(P, 4)`` positives in original image pixels.
    :ivar neg_boxes_original: ``(Q, 4)`` negatives in original image pixels.
    """

    sample: DetSample
    pos_boxes: Tensor
    pos_gt_inds: Tensor
    neg_boxes: Tensor
    pos_boxes_original: Tensor
    neg_boxes_original: Tensor

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the gt boxes, the positives (box, matched gt) and negatives, original
        pixels."""
        return {
            "img_id": self.sample.img_id,
            "img_path": self.sample.img_path,
            "num_gt": len(self.sample.gt),
            "gt_boxes": _original(self.sample.gt.boxes, self.sample).tolist(),
            "positives": self.pos_boxes_original.tolist(),
            "positive_gt_inds": self.pos_gt_inds.tolist(),
            "negatives": self.neg_boxes_original.tolist(),
        }


def has_roi_stage(detector: nn.Module) -> bool:
    """Whether ``detector`` has a proposal head and an RoI head with ``sample``."""
    roi_head = getattr(detector, "roi_head", None)
    return hasattr(detector, "rpn_head") and callable(getattr(roi_head, "sample", None))


def _original(boxes: Tensor, sample: DetSample) -> Tensor:
    return sample.boxes_to_original(boxes.detach().to("cpu", torch.float32))


@torch.no_grad()
def collect_roi_samples(detector: nn.Module, batch: DetBatch) -> list[RoISamples]:
    """Training-time proposals of the proposal head, then the RoI head's assignment and
    sampling (random: the global torch generator decides), per image.

    :param detector: a two-stage detector (:func:`has_roi_stage`).
    :param batch: images ``(B, 3, H, W)`` and samples with ``gt`` in ``img_shape`` pixels.
    """
    feats = detector.extract_feat(batch.images)
    _, proposals = detector.rpn_head.loss_and_proposals(feats, batch.samples)
    sampling, _ = detector.roi_head.sample(proposals, batch.samples)
    boxes = sampling.priors.boxes.cpu()
    gt_inds = sampling.assign_result.gt_inds.cpu()
    results = []
    for index, sample in enumerate(batch.samples):
        pos, neg = sampling.pos_mask[index].cpu(), sampling.neg_mask[index].cpu()
        results.append(RoISamples(sample, boxes[index][pos], gt_inds[index][pos] - 1,
                                  boxes[index][neg], _original(boxes[index][pos], sample),
                                  _original(boxes[index][neg], sample)))
    return results
