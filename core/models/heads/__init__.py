"""Heads: the shared dense-head path every dense head builds on (contract:
:class:`core.contracts.DenseHead`)."""

from core.models.heads.dense_head import (
    NUM_POS_KEY,
    Assignments,
    DenseHead,
    DenseLossInputs,
    DenseTargets,
    flatten_level,
    flatten_levels,
)

__all__ = ["NUM_POS_KEY", "Assignments", "DenseHead", "DenseLossInputs", "DenseTargets",
           "flatten_level", "flatten_levels"]
