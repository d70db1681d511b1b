"""The YOLO detector: core's single-stage detector with a YOLO backbone, neck and head."""

from __future__ import annotations

from core.api import SingleStageDetector


class YOLODetector(SingleStageDetector):
    """CSPDarknet -> PAFPN -> YOLO head; everything is
    :class:`~core.models.detectors.SingleStageDetector`'s, the name keeps configs readable."""
