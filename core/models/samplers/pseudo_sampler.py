"""A sampler that keeps every positive and every negative."""

from __future__ import annotations

from core.contracts import AssignResult, GTBatch, Priors, SampleResult


class PseudoSampler:
    """Uses all assigned positives and negatives (dense heads with focal loss)."""

    def sample(self, assign_result: AssignResult, priors: Priors, gt: GTBatch) -> SampleResult:
        """:param assign_result: ``(B, N)`` assignment. :param priors: the assigned priors.
        :param gt: padded ground truth (unused). :returns: masks ``(B, N)``."""
        del gt  # every assigned prior is used; the ground truth adds nothing
        return SampleResult(assign_result.pos_mask, assign_result.neg_mask, assign_result, priors)
