"""Detectors (stage ``detector``, contract :class:`core.contracts.Detector`)."""

from core.models.detectors.single_stage import SingleStageDetector
from core.models.detectors.two_stage import TwoStageDetector

__all__ = ["SingleStageDetector", "TwoStageDetector"]
