"""Entry point of the ``plugdet-retinanet`` distribution: registers the head and detector."""

from __future__ import annotations

from core.api import Register, impl
from plugdet_retinanet.retina_head import RetinaHead
from plugdet_retinanet.retinanet import RetinaNet


@impl
def register_heads(register: Register) -> None:
    register("RetinaHead", RetinaHead)


@impl
def register_detectors(register: Register) -> None:
    register("RetinaNet", RetinaNet)
