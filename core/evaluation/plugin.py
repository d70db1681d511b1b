"""Built-in plugin registering the metrics of :mod:`core.evaluation`."""

from __future__ import annotations

from core import impl
from core.evaluation.coco_metric import CocoMetric
from core.evaluation.voc_metric import VocMetric
from core.hookspecs import Register
from core.registry import register_each


@impl
def register_metrics(register: Register) -> None:
    """COCO box AP (pycocotools) and Pascal VOC mAP."""
    register_each(register, CocoMetric, VocMetric)
