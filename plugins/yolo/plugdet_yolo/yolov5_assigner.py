"""YOLOv5 shape matching: a box is positive on the anchors of similar shape, in its own cell
and the two nearest neighbouring cells (Jocher et al., ultralytics/yolov5)."""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from core.api import NEGATIVE, AssignResult, ConfigError, GTBatch, Predictions, Priors

#: The neighbour rule's threshold: a centre in the left (upper) half of its cell also trains
#: the cell on the left (above), one in the right (lower) half the cell on the right (below).
NEIGHBOUR_MARGIN = 0.5
#: Cell offsets ``(dx, dy)`` of the candidates: own, left, up, right, down.
CELL_OFFSETS = ((0, 0), (-1, 0), (0, -1), (1, 0), (0, 1))


@attrs.frozen
class LevelGrid:
    """Layout of one level's anchors (cell-major, the ``A`` anchors of a cell inner).

    :ivar first: index of the level's first prior among all priors.
    :ivar height: ``H`` cells. :ivar width: ``W`` cells.
    :ivar stride: input pixels per cell.
    :ivar anchor_wh: ``(A, 2)`` anchor ``(w, h)`` in pixels.
    """

    first: int
    height: int
    width: int
    stride: float
    anchor_wh: Tensor

    @classmethod
    def of_level(cls, first: int, points: Tensor, boxes: Tensor, stride: float) -> LevelGrid:
        """Read the grid from a level's ``(H * W * A, 2)`` points and ``(H * W * A, 4)``
        anchors: the first cell's priors share a point, the first row its ``y``."""
        per_cell = int((points == points[0]).all(dim=1).sum())
        cells = points[::per_cell]
        width = int((cells[:, 1] == cells[0, 1]).sum())
        anchors = boxes[:per_cell]
        return cls(first, len(cells) // width, width, stride, anchors[:, 2:] - anchors[:, :2])

    @property
    def num_anchors(self) -> int:
        """``A``, anchors per cell."""
        return int(self.anchor_wh.shape[0])


@attrs.frozen
class Candidates:
    """Flat list of ``K`` (image, prior, gt) candidate pairs.

    :ivar image: ``(K,)`` image index. :ivar prior: ``(K,)`` prior index.
    :ivar gt: ``(K,)`` index into the padded gt. :ivar ratio: ``(K,)`` worst side ratio
        ``max(r, 1 / r)`` of box and anchor. :ivar distance: ``(K,)`` distance (cells) from
        the box centre to the cell's centre. :ivar shape_iou: ``(K,)`` IoU of box and anchor
        with the centres aligned.
    """

    image: Tensor
    prior: Tensor
    gt: Tensor
    ratio: Tensor
    distance: Tensor
    shape_iou: Tensor

    @classmethod
    def cat(cls, parts: list[Candidates]) -> Candidates:
        return cls(*(torch.cat([getattr(p, f.name) for p in parts])
                     for f in attrs.fields(cls)))


class YOLOv5ShapeMatchAssigner:
    """YOLOv5's static assignment, batched over the padded ground truth.

    Per level, a (box, anchor) pair matches when ``max(r, 1 / r) < anchor_t`` for both
    ``r = box_w / anchor_w`` and ``r = box_h / anchor_h``. With ``g = c / stride`` the box
    centre in cells and ``(W, H)`` the grid, each matched anchor is positive in the cell
    ``floor(g)`` and in the neighbouring cells: left when ``g_x % 1 < 0.5`` and ``g_x > 1``,
    up likewise in ``y``, right when ``(W - g_x) % 1 < 0.5`` and ``W - g_x > 1``, down likewise:
    usually 3 cells; a centre on a half-cell line has no neighbour in that direction, one on a
    cell border both (up to 5 cells). Cell indices are clamped to the grid, so a centre on the
    right or bottom border trains the last cell.

    The references train a (cell, anchor) claimed by several boxes on all of them; an
    :class:`AssignResult` holds one box per prior, so such a prior goes to the box of smallest
    worst side ratio (the best shape match), then to the box whose centre is nearest to the
    cell's centre, then to the lower box index. Ignore regions are not used (YOLOv5 has none).

    ``max_overlaps`` holds the shape IoU (box and anchor with aligned centres) of each positive
    and 0 elsewhere; ``labels`` the matched class, ``-1`` for negatives.

    :param anchor_t: the side-ratio threshold (``prior_match_thr``), > 1.
    """

    uses_predictions = False

    def __init__(self, anchor_t: float = 4.0) -> None:
        if anchor_t <= 1.0:
            raise ConfigError(f"anchor_t: expected a ratio > 1, got {anchor_t}")
        self.anchor_t = anchor_t

    def assign(self, priors: Priors, gt: GTBatch, pred: Predictions | None = None
               ) -> AssignResult:
        """:param priors: shared anchors (``boxes`` ``(N, 4)``) of every level, cell-major.
        :param gt: ``(B, M, 4)`` padded boxes.
        :param pred: unused (static assignment).
        :returns: ``(B, N)`` tensors."""
        if priors.per_image or priors.boxes is None:
            raise ValueError("YOLOv5ShapeMatchAssigner needs anchor boxes shared by the batch")
        num_images, num_priors = gt.boxes.shape[0], priors.num_priors
        candidates = Candidates.cat([
            self.level_candidates(grid, gt) for grid in self.grids(priors, priors.boxes)])
        winner = self.resolve(candidates, num_images, num_priors)
        gt_inds = gt.boxes.new_full((num_images, num_priors), NEGATIVE, dtype=torch.long)
        overlaps = gt.boxes.new_zeros((num_images, num_priors))
        labels = torch.full_like(gt_inds, -1)
        image, prior, index = (candidates.image[winner], candidates.prior[winner],
                               candidates.gt[winner])
        gt_inds[image, prior] = index + 1
        overlaps[image, prior] = candidates.shape_iou[winner]
        labels[image, prior] = gt.labels[image, index]
        return AssignResult(gt_inds, overlaps, labels, gt.num_gts)

    @staticmethod
    def grids(priors: Priors, boxes: Tensor) -> list[LevelGrid]:
        """The layout of every level of ``priors`` (``boxes``: their ``(N, 4)`` anchors)."""
        firsts = torch.tensor((0, *priors.level_sizes)).cumsum(0).tolist()
        return [
            LevelGrid.of_level(first, points, boxes, float(strides[0]))
            for first, points, boxes, strides in zip(
                firsts, priors.split_levels(priors.points), priors.split_levels(boxes),
                priors.split_levels(priors.strides), strict=False)
        ]

    def level_candidates(self, grid: LevelGrid, gt: GTBatch) -> Candidates:
        """Every (image, prior, gt) pair one level proposes."""
        boxes = gt.boxes
        wh = boxes[..., 2:] - boxes[..., :2]  # (B, M, 2)
        anchor_wh = grid.anchor_wh.to(boxes)
        ratio = wh[:, :, None, :] / anchor_wh  # (B, M, A, 2)
        worst = torch.maximum(ratio, 1 / ratio).amax(dim=-1)  # (B, M, A)
        matched = (worst < self.anchor_t) & gt.valid[:, :, None]
        inter = torch.minimum(wh[:, :, None, :], anchor_wh).prod(dim=-1)
        shape_iou = inter / (wh.prod(dim=-1)[:, :, None] + anchor_wh.prod(dim=-1) - inter)

        centre = (boxes[..., :2] + boxes[..., 2:]) / 2 / grid.stride  # (B, M, 2) in cells
        size = centre.new_tensor((grid.width, grid.height))
        low = (centre % 1 < NEIGHBOUR_MARGIN) & (centre > 1)
        high = ((size - centre) % 1 < NEIGHBOUR_MARGIN) & (size - centre > 1)
        own = torch.ones_like(low[..., 0])
        use = torch.stack([own, low[..., 0], low[..., 1], high[..., 0], high[..., 1]], dim=-1)
        offsets = centre.new_tensor(CELL_OFFSETS)  # (5, 2)
        cells = centre.floor()[:, :, None, :] + offsets  # (B, M, 5, 2)
        cells = torch.minimum(cells.clamp(min=0), size - 1)
        distance = (centre[:, :, None, :] - (cells + 0.5)).norm(dim=-1)  # (B, M, 5)

        pairs = matched[:, :, :, None] & use[:, :, None, :]  # (B, M, A, 5)
        image, index, anchor, cand = pairs.nonzero(as_tuple=True)
        cell = cells[image, index, cand].long()
        prior = grid.first + (cell[:, 1] * grid.width + cell[:, 0]) * grid.num_anchors + anchor
        return Candidates(image, prior, index, worst[image, index, anchor],
                          distance[image, index, cand], shape_iou[image, index, anchor])

    @staticmethod
    def resolve(candidates: Candidates, num_images: int, num_priors: int) -> Tensor:
        """``(K,)`` bool: the one candidate kept for each claimed (image, prior): smallest
        ratio, then nearest centre, then lowest gt index."""
        order = torch.arange(len(candidates.gt), device=candidates.gt.device)
        for key in (candidates.gt, candidates.distance, candidates.ratio):  # least first
            order = order[torch.sort(key[order], stable=True).indices]
        rank = torch.empty_like(order)
        rank[order] = torch.arange(len(order), device=order.device)
        slot = candidates.image * num_priors + candidates.prior
        best = torch.full((num_images * num_priors,), len(order), dtype=torch.long,
                          device=order.device)
        best = best.scatter_reduce(0, slot, rank, reduce="amin")
        return rank == best[slot]
