"""Assigners: decide for every prior whether it is positive (and for which gt), negative or
ignored."""

from core.models.assigners.assign_result import AssignResult
from core.models.assigners.max_iou_assigner import MaxIoUAssigner

__all__ = ["AssignResult", "MaxIoUAssigner"]
