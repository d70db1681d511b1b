"""Ask a detector's head which priors its assigner makes positive for each image."""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch import Tensor, nn

from core.errors import ConfigError
from core.structures import DetBatch, DetSample, Instances
from core.visualization.visualizer import to_original_frame


@attrs.define
class LevelPositives:
    """The positive priors of one image on one feature level.

    :ivar level: level index (0 = finest).
    :ivar stride: input pixels per feature-map cell ``(sy, sx)``.
    :ivar priors_per_cell: A, the number of priors on every cell of this level.
    :ivar prior_inds: ``(P,)`` int64 indices into the level's ``H * W * A`` priors.
    :ivar base_inds: ``(P,)`` int64 index of each positive among its cell's A priors.
    :ivar gt_inds: ``(P,)`` int64 index into ``sample.gt`` of the matched box.
    :ivar boxes: ``(P, 4)`` the priors, xyxy in network-input (``img_shape``) pixels.
    :ivar boxes_original: ``(P, 4)`` the same priors in original image pixels.
    :ivar anchor_sizes: ``(A, 2)`` ``(w, h)`` in network-input pixels of the A priors of a
        cell (zeros for point priors).
    """

    level: int
    stride: tuple[float, float]
    priors_per_cell: int
    prior_inds: Tensor
    base_inds: Tensor
    gt_inds: Tensor
    boxes: Tensor
    boxes_original: Tensor
    anchor_sizes: Tensor

    def of_anchor(self, index: int) -> Tensor:
        """``(P,)`` bool: the positives that are the cell's prior ``index``."""
        return self.base_inds == index

    def anchor_summary(self) -> list[dict[str, Any]]:
        """Per prior index in the cell (all A, matched or not): its size, its number of
        positives and the gt boxes they are matched to."""
        return [
            {"index": index, "size": [round(v, 2) for v in size],
             "positives": int(self.of_anchor(index).sum()),
             "gt_inds": sorted(set(self.gt_inds[self.of_anchor(index)].tolist()))}
            for index, size in enumerate(self.anchor_sizes.tolist())
        ]


@attrs.define
class ImagePositives:
    """One image: its sample (``gt`` in ``img_shape`` pixels) and its positives per level."""

    sample: DetSample
    levels: list[LevelPositives]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary per level: prior indices, index in the cell, matched gt, prior
        sizes (network-input pixels), prior centres (original image pixels) and the split per
        prior index in the cell (``anchors``)."""
        return {
            "img_id": self.sample.img_id,
            "img_path": self.sample.img_path,
            "num_gt": len(self.sample.gt),
            "levels": [
                {
                    "level": lv.level,
                    "stride": list(lv.stride),
                    "prior_inds": lv.prior_inds.tolist(),
                    "base_inds": lv.base_inds.tolist(),
                    "gt_inds": lv.gt_inds.tolist(),
                    "prior_sizes": (lv.boxes[:, 2:] - lv.boxes[:, :2]).round().tolist(),
                    "centers_original": (
                        (lv.boxes_original[:, :2] + lv.boxes_original[:, 2:]) / 2
                    ).tolist(),
                    "anchors": lv.anchor_summary(),
                }
                for lv in self.levels
            ],
        }


def _head_of(detector: nn.Module) -> Any:
    """The dense head of a single-stage detector, or the proposal head of a two-stage one."""
    head = getattr(detector, "head", None) or getattr(detector, "rpn_head", None)
    if head is None or not callable(getattr(head, "get_assignments", None)):
        raise ConfigError(
            f"model: {type(detector).__name__} has no head with a "
            "get_assignments(feats, samples) method; positive-sample visualization "
            "needs one (every head built on core.models.heads.DenseHead has it)"
        )
    return head


def cell_prior_sizes(priors: Tensor, per_cell: int) -> Tensor:
    """``(A, 2)`` sizes of the first cell's priors from a level's ``(N, 4)`` boxes (zeros for
    ``(N, 2)`` points)."""
    first = priors[:per_cell]
    if first.shape[-1] != 4:
        return torch.zeros((per_cell, 2))
    return first[:, 2:] - first[:, :2]


@torch.no_grad()
def collect_positives(detector: nn.Module, batch: DetBatch) -> list[ImagePositives]:
    """Run the backbone/neck for the feature-map sizes, then the head's assignment.

    :param detector: a detector with ``extract_feat(images)`` and ``head.get_assignments``.
    :param batch: images ``(B, 3, H, W)`` and samples with ``gt`` in ``img_shape`` pixels.
    """
    head = _head_of(detector)
    feats = detector.extract_feat(batch.images)
    sizes = [tuple(int(s) for s in f.shape[-2:]) for f in feats]
    assignments = head.get_assignments(feats, batch.samples)
    height, width = batch.images.shape[-2:]
    results = []
    for image_index, sample in enumerate(batch.samples):
        levels = []
        for level, (priors, (rows, cols)) in enumerate(zip(assignments.priors, sizes,
                                                           strict=True)):
            per_cell = len(priors) // (rows * cols)
            inds = assignments.pos_inds[image_index][level].cpu()
            boxes = priors.cpu()[inds]
            levels.append(LevelPositives(
                level=level,
                stride=(height / rows, width / cols),
                priors_per_cell=per_cell,
                prior_inds=inds,
                base_inds=inds % per_cell,
                gt_inds=assignments.pos_gt_inds[image_index][level].cpu(),
                boxes=boxes,
                boxes_original=to_original_frame(
                    Instances(boxes, torch.zeros(len(boxes), dtype=torch.int64)), sample
                ).boxes,
                anchor_sizes=cell_prior_sizes(priors.cpu(), per_cell),
            ))
        results.append(ImagePositives(sample, levels))
    return results
