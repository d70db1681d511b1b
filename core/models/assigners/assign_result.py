"""The result of assigning priors to ground-truth boxes, batched over images."""

from __future__ import annotations

import attrs
from torch import Tensor

#: ``gt_inds`` value of a prior excluded from training.
IGNORE = -1
#: ``gt_inds`` value of a background prior; ``i + 1`` means matched to gt box ``i``.
NEGATIVE = 0


@attrs.frozen
class AssignResult:
    """Assignment of N priors in each of B images (MMDetection's convention).

    :ivar gt_inds: ``(B, N)`` int64: ``-1`` ignored, ``0`` negative, ``i + 1`` positive for gt
        box ``i`` (index into the padded ``(B, M)`` ground truth).
    :ivar max_overlaps: ``(B, N)`` float: IoU with the best gt (``-1`` for priors ignored via
        ignore regions, 0 when the image has no gt).
    :ivar labels: ``(B, N)`` int64: class of the matched gt, ``-1`` for non-positives.
    :ivar num_gts: ``(B,)`` int64 number of real gt boxes per image.
    """

    gt_inds: Tensor
    max_overlaps: Tensor
    labels: Tensor
    num_gts: Tensor

    @property
    def pos_mask(self) -> Tensor:
        """``(B, N)`` bool, positive priors."""
        return self.gt_inds > NEGATIVE

    @property
    def neg_mask(self) -> Tensor:
        """``(B, N)`` bool, negative priors."""
        return self.gt_inds == NEGATIVE

    @property
    def ignore_mask(self) -> Tensor:
        """``(B, N)`` bool, ignored priors."""
        return self.gt_inds == IGNORE

    @property
    def matched_gt_index(self) -> Tensor:
        """``(B, N)`` int64 0-based index of the matched gt, clamped to 0 for non-positives."""
        return (self.gt_inds - 1).clamp(min=0)
