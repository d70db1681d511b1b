"""The result of sampling assigned priors, batched over images."""

from __future__ import annotations

import attrs
from torch import Tensor

from core.models.assigners.assign_result import AssignResult


@attrs.frozen
class SampleResult:
    """Which of the N' priors of each of B images are used as positives and negatives.

    :ivar pos_mask: ``(B, N')`` bool, sampled positives.
    :ivar neg_mask: ``(B, N')`` bool, sampled negatives (disjoint from ``pos_mask``).
    :ivar assign_result: the assignment the samples come from, with ``(B, N')`` tensors.
    :ivar priors: ``(N', 4)`` priors shared by all images, or ``(B, N', 4)`` when gt boxes were
        appended per image as extra proposals (``N' = N + M``).
    """

    pos_mask: Tensor
    neg_mask: Tensor
    assign_result: AssignResult
    priors: Tensor

    @property
    def num_pos(self) -> int:
        """Sampled positives over the whole batch."""
        return int(self.pos_mask.sum())

    @property
    def num_neg(self) -> int:
        """Sampled negatives over the whole batch."""
        return int(self.neg_mask.sum())
