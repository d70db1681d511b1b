"""The positives of one image: which priors a dense head's assigner makes positive, per level.

One data model and one way to build it, shared by the training-time
:class:`~core.visualization.hooks.PositiveSamplesHook` and the ``assigner_vis`` tool: the
detector's own head decides (``get_assignments(feats, samples)``), :func:`image_positives`
turns its :class:`~core.models.heads.dense_head.Assignments` and the sample into an
:class:`ImagePositives`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs
import torch
from torch import Tensor, nn

from core.errors import ConfigError
from core.structures import DetSample

if TYPE_CHECKING:
    from core.models.heads.dense_head import Assignments


@attrs.define
class LevelPositives:
    """The positive priors of one image on one feature level.

    :ivar level: level index (0 = finest).
    :ivar stride: input pixels per feature-map cell ``(sy, sx)`` (the prior generator's).
    :ivar priors_per_cell: A, the number of priors on every cell of this level.
    :ivar prior_inds: ``(P,)`` int64 indices into the level's ``H * W * A`` priors.
    :ivar base_inds: ``(P,)`` int64 index of each positive among its cell's A priors (the
        anchor slot).
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


def dense_head_of(model: nn.Module) -> Any:
    """The head that assigns priors: a single-stage detector's ``head`` or a two-stage
    detector's ``rpn_head``, with ``get_assignments(feats, samples)`` and a
    ``prior_generator`` with ``strides``.

    :raises ConfigError: when the model has none.
    """
    for name in ("head", "rpn_head"):
        head = getattr(model, name, None)
        if (head is not None and callable(getattr(head, "get_assignments", None))
                and hasattr(getattr(head, "prior_generator", None), "strides")):
            return head
    raise ConfigError(
        f"model: {type(model).__name__} has no head with get_assignments(feats, samples) "
        "and a prior_generator with strides; positive-sample visualization needs one (every "
        "head built on core.models.heads.DenseHead has both)")


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
    """``(P, 4)`` xyxy network-input boxes in original image pixels (float32, CPU)."""
    return sample.boxes_to_original(boxes.detach().to("cpu", torch.float32))


def image_positives(assignments: Assignments, index: int, sample: DetSample,
                    featmap_sizes: Sequence[tuple[int, int]], strides: Sequence[float],
                    ) -> ImagePositives:
    """The positives of image ``index`` of a batch's assignments.

    :param assignments: what the head's ``get_assignments(feats, samples)`` returned.
    :param sample: that image's sample (``gt`` in ``img_shape`` pixels).
    :param featmap_sizes: ``(H_l, W_l)`` of each level's feature map.
    :param strides: each level's stride in input pixels (the prior generator's).
    :raises ConfigError: priors that are neither boxes nor points.
    """
    levels = []
    for level, (priors, (rows, cols), stride) in enumerate(zip(
            assignments.priors, featmap_sizes, strides, strict=True)):
        priors = priors.detach().cpu().float()
        per_cell = len(priors) // (rows * cols)
        square = (float(stride), float(stride))
        inds = assignments.pos_inds[index][level].cpu()
        points, boxes = prior_points_and_boxes(priors[inds], square)
        # a point maps to the original frame as a zero-size box
        points_original = _in_original_frame(points.repeat(1, 2), sample)[:, :2]
        levels.append(LevelPositives(
            level=level,
            stride=square,
            priors_per_cell=per_cell,
            prior_inds=inds,
            base_inds=inds % per_cell,
            gt_inds=assignments.pos_gt_inds[index][level].cpu(),
            points=points,
            points_original=points_original,
            boxes=boxes,
            boxes_original=_in_original_frame(boxes, sample),
            anchor_sizes=cell_prior_sizes(priors, per_cell),
            point_priors=priors.shape[-1] == 2,
        ))
    return ImagePositives(sample, levels)


@torch.no_grad()
def collect_positives(model: nn.Module, images: Tensor, samples: Sequence[DetSample],
                      ) -> list[ImagePositives]:
    """Run the backbone and neck, then the head's assignment (in the model's current mode),
    and return the positives of every image.

    :param model: a detector with ``extract_feat(images)`` and a head as
        :func:`dense_head_of` finds it.
    :param images: ``(B, 3, H, W)`` network input on the model's device.
    :param samples: the ``B`` samples with ``gt`` in ``img_shape`` pixels.
    :raises ConfigError: no such head, or priors that are neither boxes nor points.
    """
    head = dense_head_of(model)
    feats = model.extract_feat(images)
    sizes = [(int(f.shape[-2]), int(f.shape[-1])) for f in feats]
    assignments = head.get_assignments(feats, list(samples))
    strides = list(head.prior_generator.strides)
    return [image_positives(assignments, index, sample, sizes, strides)
            for index, sample in enumerate(samples)]
