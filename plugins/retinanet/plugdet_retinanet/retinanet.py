"""The RetinaNet detector: core's single-stage detector with a :class:`RetinaHead`."""

from __future__ import annotations

from core.api import SingleStageDetector


class RetinaNet(SingleStageDetector):
    """Backbone -> FPN -> :class:`~plugdet_retinanet.retina_head.RetinaHead`; everything is
    :class:`~core.models.detectors.SingleStageDetector`'s, the name keeps configs readable."""
