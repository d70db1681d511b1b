"""The path every RoI head shares (the box branch here, a mask branch next to it): sampled
RoIs with their ground truth for training, and per-class decoding -> selection -> NMS for
testing. A mask head crops its targets with :attr:`RoITargets.pos_gt_inds` and runs on the
detections :func:`roi_detections` returns."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from core.api import BoxCoder, GTBatch, Instances, PostProcess, Priors, SampleResult


def proposal_priors(proposals: Sequence[Instances], device: torch.device | str) -> Priors:
    """Per-image proposals padded to one length: ``(B, R, 4)`` boxes with ``valid (B, R)``."""
    boxes = pad_sequence([p.boxes.to(device) for p in proposals], batch_first=True)
    counts = torch.tensor([len(p) for p in proposals], device=device)
    valid = torch.arange(boxes.shape[1], device=device)[None, :] < counts[:, None]
    return Priors(points=(boxes[..., :2] + boxes[..., 2:]) / 2,
                  strides=boxes.new_zeros(boxes.shape[:2]), level_sizes=(boxes.shape[1],),
                  boxes=boxes, valid=valid)


@attrs.frozen
class RoITargets:
    """The sampled RoIs of a batch and their targets.

    :ivar rois: ``(K, 5)`` ``(image index, x1, y1, x2, y2)`` sampled RoIs.
    :ivar labels: ``(K,)`` int64 class of each RoI, ``num_classes`` for background.
    :ivar is_pos: ``(K,)`` bool, positive RoIs.
    :ivar pos_gt_inds: ``(P,)`` int64 index of each positive's gt box in its image's
        ``samples[i].gt`` (a mask head's targets), in the order of the positives.
    :ivar box_targets: ``(P, encode_size)`` encoded gt boxes of the positives, in order.
    """

    rois: Tensor
    labels: Tensor
    is_pos: Tensor
    pos_gt_inds: Tensor
    box_targets: Tensor

    @property
    def avg_factor(self) -> int:
        """The losses' normaliser: the number of sampled RoIs (at least 1)."""
        return max(len(self.labels), 1)

    @property
    def pos_rois(self) -> Tensor:
        """``(P, 5)`` the positive RoIs."""
        return self.rois[self.is_pos]

    @property
    def pos_labels(self) -> Tensor:
        """``(P,)`` the class of each positive RoI."""
        return self.labels[self.is_pos]


def roi_targets(sampling: SampleResult, gt: GTBatch, bbox_coder: BoxCoder, num_classes: int
                ) -> RoITargets:
    """The sampled RoIs of a ``(B, M + R)`` sampling (RoIs in ``sampling.priors.boxes``),
    their labels and the positives' gt indices and encoded gt boxes."""
    assert sampling.priors.boxes is not None  # the RoIs: proposals (and gt boxes)
    image, index = (sampling.pos_mask | sampling.neg_mask).nonzero(as_tuple=True)
    boxes = sampling.priors.boxes[image, index]
    assigned = sampling.assign_result
    is_pos = sampling.pos_mask[image, index]
    labels = torch.where(is_pos, assigned.labels[image, index], num_classes)
    pos_gt_inds = assigned.gt_inds[image, index][is_pos] - 1
    pos_gt = gt.boxes[image[is_pos], pos_gt_inds]
    return RoITargets(rois=torch.cat([image[:, None].to(boxes.dtype), boxes], dim=1),
                      labels=labels, is_pos=is_pos, pos_gt_inds=pos_gt_inds,
                      box_targets=bbox_coder.encode(boxes[is_pos], pos_gt))


def roi_detections(priors: Priors, cls: Tensor, deltas: Tensor, img_shapes: Tensor,
                   bbox_coder: BoxCoder, postprocess: PostProcess, min_bbox_size: float
                   ) -> list[Instances]:
    """Detections per image from the RoIs' class-specific outputs: softmax scores, boxes
    decoded per class and clipped to the image, boxes under ``min_bbox_size`` dropped, then
    the selection and per-class NMS of ``postprocess``.

    :param priors: the padded proposals (:func:`proposal_priors`), ``(B, R)`` valid.
    :param cls: ``(K, C + 1)`` class logits of the valid proposals, in ``valid.nonzero()``
        order. :param deltas: ``(K, C, encode_size)`` their class-specific box values.
    :param img_shapes: ``(B, 2)`` ``(H, W)`` to clip to.
    """
    assert priors.boxes is not None and priors.valid is not None  # set by proposal_priors
    image, index = priors.valid.nonzero(as_tuple=True)
    num_classes = cls.shape[-1] - 1
    boxes = priors.boxes[image, index]
    decoded = bbox_coder.decode(boxes[:, None, :], deltas,
                                max_shape=img_shapes[image][:, None, :])  # (K, C, 4)
    scores = cls.softmax(dim=-1)[:, :num_classes]
    num_images, num_rois = priors.valid.shape
    padded_scores = scores.new_zeros((num_images, num_rois, num_classes))
    padded_scores[image, index] = scores
    padded_boxes = decoded.new_zeros((num_images, num_rois, num_classes, 4))
    padded_boxes[image, index] = decoded
    candidates = postprocess.select([padded_scores])
    batch = torch.arange(num_images, device=cls.device)[:, None]
    cand_boxes = padded_boxes[batch, candidates.prior_inds, candidates.labels]
    sizes = cand_boxes[..., 2:] - cand_boxes[..., :2]
    large = (sizes >= min_bbox_size).all(dim=-1)
    real = priors.valid.gather(1, candidates.prior_inds)
    candidates = attrs.evolve(candidates, valid=candidates.valid & large & real)
    result: list[Instances] = postprocess(cand_boxes, candidates)
    return result
