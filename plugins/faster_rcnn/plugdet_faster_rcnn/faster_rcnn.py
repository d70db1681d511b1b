"""The Faster R-CNN detector: core's two-stage detector with an RPN and an RoI head."""

from __future__ import annotations

from core.api import TwoStageDetector


class FasterRCNN(TwoStageDetector):
    """Backbone -> FPN -> :class:`~plugdet_faster_rcnn.rpn_head.RPNHead` ->
    :class:`~plugdet_faster_rcnn.roi_head.StandardRoIHead` (Ren et al., 2015); everything is
    :class:`~core.models.detectors.TwoStageDetector`'s, the name keeps configs readable."""
