"""Score threshold, per-level top-k and class-wise NMS, batched over images."""

from __future__ import annotations

import attrs
import torch
from torch import Tensor
from torchvision.ops import batched_nms

from core.errors import ConfigError
from core.structures import Instances


@attrs.frozen
class Candidates:
    """The ``K`` best (prior, class) pairs of each of B images, across all levels.

    :ivar scores: ``(B, K)`` float scores.
    :ivar labels: ``(B, K)`` int64 class indices.
    :ivar prior_inds: ``(B, K)`` int64 indices into the concatenated priors of all levels.
    :ivar valid: ``(B, K)`` bool, False for entries at or below the score threshold.
    """

    scores: Tensor
    labels: Tensor
    prior_inds: Tensor
    valid: Tensor


class MultiClassNMS:
    """Selects detections from dense per-prior class scores.

    For each level, the (prior, class) pairs scoring above ``score_thr`` are ranked and the best
    ``nms_pre`` kept; their boxes are then decoded by the caller and non-maximum suppression is
    applied per class with ``iou_threshold``; the best ``max_per_img`` survive per image. All
    images are processed at once (one ``batched_nms`` call keyed by image and class).

    :param score_thr: minimum score of a kept pair.
    :param nms_pre: pairs kept per level before NMS.
    :param iou_threshold: IoU above which a lower-scored box of the same class is suppressed.
    :param max_per_img: detections kept per image after NMS.
    """

    def __init__(
        self,
        score_thr: float = 0.05,
        nms_pre: int = 1000,
        iou_threshold: float = 0.5,
        max_per_img: int = 100,
    ) -> None:
        if nms_pre < 1 or max_per_img < 1:
            raise ConfigError(
                f"nms_pre/max_per_img: expected positive ints, got {nms_pre}, {max_per_img}"
            )
        self.score_thr = score_thr
        self.nms_pre = nms_pre
        self.iou_threshold = iou_threshold
        self.max_per_img = max_per_img

    def select(self, level_scores: list[Tensor]) -> Candidates:
        """Top ``nms_pre`` (prior, class) pairs per level.

        Pairs at or below ``score_thr`` are never kept, so a level ranks only as many pairs
        as its image with the most pairs above the threshold has (at least one): the same
        valid candidates as ranking ``nms_pre``, without sorting pairs that cannot survive.

        :param level_scores: per level ``(B, N_l, C)`` scores (probabilities).
        :returns: candidates with ``K = sum_l K_l``, ``1 <= K_l <= min(nms_pre, N_l * C)``.
        """
        scores, labels, prior_inds = [], [], []
        offset = 0
        for level in level_scores:
            num_images, num_priors, num_classes = level.shape
            flat = level.reshape(num_images, -1)
            above = int((flat > self.score_thr).sum(dim=1).max()) if flat.numel() else 0
            top_scores, top_idx = flat.topk(max(1, min(self.nms_pre, flat.shape[1], above)),
                                            dim=1)
            scores.append(top_scores)
            labels.append(top_idx % num_classes)
            prior_inds.append(torch.div(top_idx, num_classes, rounding_mode="floor") + offset)
            offset += num_priors
        score = torch.cat(scores, dim=1)
        return Candidates(
            score, torch.cat(labels, dim=1), torch.cat(prior_inds, dim=1), score > self.score_thr
        )

    def __call__(self, boxes: Tensor, candidates: Candidates) -> list[Instances]:
        """Class-wise NMS per image.

        :param boxes: ``(B, K, 4)`` decoded xyxy boxes of the candidates.
        :param candidates: from :meth:`select`.
        :returns: B instance sets with at most ``max_per_img`` boxes, scores descending.
        """
        return self.nms_with_indices(boxes, candidates)[0]

    def nms_with_indices(self, boxes: Tensor, candidates: Candidates
                         ) -> tuple[list[Instances], list[Tensor]]:
        """:meth:`__call__`'s detections and, per image, which candidates they are.

        :param boxes: ``(B, K, 4)`` decoded xyxy boxes of the candidates.
        :param candidates: from :meth:`select`.
        :returns: the B instance sets of :meth:`__call__` and per image the ``(N,)`` int64
            index of each detection into the K candidates (``candidates.prior_inds[b,
            index]`` are the detections' priors).
        """
        num_images, _, _ = boxes.shape
        image_index = torch.arange(num_images, device=boxes.device)[:, None].expand_as(
            candidates.labels
        )
        valid = candidates.valid
        flat_boxes = boxes[valid]
        flat_scores = candidates.scores[valid]
        flat_labels = candidates.labels[valid]
        flat_images = image_index[valid]
        flat_candidates = valid.nonzero()[:, 1]
        num_classes_seen = int(flat_labels.max()) + 1 if flat_labels.numel() else 1
        keep = batched_nms(
            flat_boxes,
            flat_scores,
            flat_images * num_classes_seen + flat_labels,
            self.iou_threshold,
        )  # sorted by score, descending
        kept_images = flat_images[keep]
        order = torch.sort(kept_images, stable=True).indices  # by image, score order kept
        keep, kept_images = keep[order], kept_images[order]
        counts = torch.bincount(kept_images, minlength=num_images)
        starts = torch.cumsum(counts, dim=0) - counts
        rank = torch.arange(len(keep), device=boxes.device) - starts[kept_images]
        keep = keep[rank < self.max_per_img]
        kept_counts: list[int] = counts.clamp(max=self.max_per_img).tolist()
        results, indices = [], []
        for image_keep in torch.split(keep, kept_counts):
            results.append(
                Instances(flat_boxes[image_keep], flat_labels[image_keep], flat_scores[image_keep])
            )
            indices.append(flat_candidates[image_keep])
        return results, indices
