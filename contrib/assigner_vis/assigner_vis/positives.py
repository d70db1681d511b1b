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
    :ivar points: ``(P, 2)`` the prior points (point priors) or box centres, network-input
        (``img_shape``) pixels.
    :ivar points_original: ``(P, 2)`` the same points in original image pixels.
    :ivar boxes: ``(P, 4)`` the priors, xyxy in network-input pixels; for point priors the
        stride-sized square centred on each point (the cell it stands for).
    :ivar boxes_original: ``(P, 4)`` the same boxes in original image pixels.
    :ivar anchor_sizes: ``(A, 2)`` ``(w, h)`` in network-input pixels of the A priors of a
        cell (zeros for point priors).
    :ivar point_priors: the level's priors are ``(N_l, 2)`` points, not ``(N_l, 4)`` boxes.
    """

    level: int
    stride: tuple[float, float]
    priors_per_cell: int
    prior_inds: Tensor
    base_inds: Tensor
    gt_inds: Tensor
    points: Tensor
    points_original: Tensor
    boxes: Tensor
    boxes_original: Tensor
    anchor_sizes: Tensor
    point_priors: bool = False

    def of_anchor(self, index: int) -> Tensor:
        """``(P,)`` bool: the positives that are the cell's prior ``index``."""
        return self.base_inds == index

    def anchor_summary(self) -> list[dict[str, Any]]:
        """Per prior index in the cell (all A, matched or not): its size (``None`` for a
        point), its number of positives and the gt boxes they are matched to."""
        return [
            {"index": index,
             "size": None if self.point_priors else [round(v, 2) for v in size],
             "positives": int(self.of_anchor(index).sum()),
             "gt_inds": sorted(set(self.gt_inds[self.of_anchor(index)].tolist()))}
            for index, size in enumerate(self.anchor_sizes.tolist())
        ]


@attrs.define
class ImagePositives:
    """One image: its sample (``gt`` in ``img_shape`` pixels) and its positives per level."""

    sample: DetSample
    levels: list[LevelPositives]

    def as_dict(self, weights: dict[str, Any] | None = None) -> dict[str, Any]:
        """JSON-ready summary per level: prior kind (``"box"`` or ``"point"``), prior
        indices, index in the cell, matched gt, prior sizes (network-input pixels; ``None``
        for points), prior centres (original image pixels) and the split per prior index in
        the cell (``anchors``); with ``weights``, also which model weights were used."""
        return {
            "img_id": self.sample.img_id,
            "img_path": self.sample.img_path,
            "num_gt": len(self.sample.gt),
            **({} if weights is None else {"weights": weights}),
            "levels": [
                {
                    "level": lv.level,
                    "stride": list(lv.stride),
                    "prior_type": "point" if lv.point_priors else "box",
                    "prior_inds": lv.prior_inds.tolist(),
                    "base_inds": lv.base_inds.tolist(),
                    "gt_inds": lv.gt_inds.tolist(),
                    "prior_sizes": None if lv.point_priors else (
                        lv.boxes[:, 2:] - lv.boxes[:, :2]).round().tolist(),
                    "centers_original": lv.points_original.tolist(),
                    "anchors": lv.anchor_summary(),
                }
                for lv in self.levels
            ],
        }


def head_of(detector: nn.Module) -> Any:
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


def prior_points_and_boxes(priors: Tensor, stride: tuple[float, float],
                           ) -> tuple[Tensor, Tensor]:
    """``(P, 2)`` points and ``(P, 4)`` xyxy boxes of ``(P, 4)`` box priors (points: their
    centres) or of ``(P, 2)`` point priors (boxes: a square of the level's ``(sy, sx)``
    stride centred on each point).

    :raises ConfigError: priors of any other shape.
    """
    if priors.shape[-1] == 4:
        return (priors[:, :2] + priors[:, 2:]) / 2, priors
    if priors.dim() != 2 or priors.shape[-1] != 2:
        raise ConfigError(f"model: get_assignments returned priors of shape "
                          f"{tuple(priors.shape)}; expected (N, 4) boxes or (N, 2) points")
    half = torch.tensor([stride[1], stride[0]], dtype=priors.dtype) / 2
    return priors, torch.cat([priors - half, priors + half], dim=-1)


def _in_original_frame(boxes: Tensor, sample: DetSample) -> Tensor:
    """``(P, 4)`` xyxy network-input boxes in original image pixels."""
    return to_original_frame(
        Instances(boxes, torch.zeros(len(boxes), dtype=torch.int64)), sample).boxes


@torch.no_grad()
def collect_positives(detector: nn.Module, batch: DetBatch) -> list[ImagePositives]:
    """Run the backbone/neck for the feature-map sizes, then the head's assignment.

    :param detector: a detector with ``extract_feat(images)`` and ``head.get_assignments``.
    :param batch: images ``(B, 3, H, W)`` and samples with ``gt`` in ``img_shape`` pixels.
    :raises ConfigError: no such head, or priors that are neither boxes nor points.
    """
    head = head_of(detector)
    feats = detector.extract_feat(batch.images)
    sizes = [tuple(int(s) for s in f.shape[-2:]) for f in feats]
    assignments = head.get_assignments(feats, batch.samples)
    height, width = batch.images.shape[-2:]
    results = []
    for image_index, sample in enumerate(batch.samples):
        levels = []
        for level, (priors, (rows, cols)) in enumerate(zip(assignments.priors, sizes,
                                                           strict=True)):
            priors = priors.cpu().float()
            per_cell = len(priors) // (rows * cols)
            stride = (height / rows, width / cols)
            inds = assignments.pos_inds[image_index][level].cpu()
            points, boxes = prior_points_and_boxes(priors[inds], stride)
            # a point maps to the original frame as a zero-size box
            points_original = _in_original_frame(points.repeat(1, 2), sample)[:, :2]
            levels.append(LevelPositives(
                level=level,
                stride=stride,
                priors_per_cell=per_cell,
                prior_inds=inds,
                base_inds=inds % per_cell,
                gt_inds=assignments.pos_gt_inds[image_index][level].cpu(),
                points=points,
                points_original=points_original,
                boxes=boxes,
                boxes_original=_in_original_frame(boxes, sample),
                anchor_sizes=cell_prior_sizes(priors, per_cell),
                point_priors=priors.shape[-1] == 2,
            ))
        results.append(ImagePositives(sample, levels))
    return results
