"""Assigners: decide for every prior whether it is positive (and for which gt), negative or
ignored (contract: :class:`core.contracts.Assigner`)."""

from core.models.assigners.atss_assigner import ATSSAssigner
from core.models.assigners.max_iou_assigner import MaxIoUAssigner
from core.models.assigners.quality_matcher import QualityMatcher
from core.models.assigners.task_aligned_assigner import TaskAlignedAssigner

__all__ = ["ATSSAssigner", "MaxIoUAssigner", "QualityMatcher", "TaskAlignedAssigner"]
