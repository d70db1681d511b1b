"""Entry point of the ``plugdet-retinanet`` distribution: registers the heads, the detector
and the weight converters of torchvision's and MMDetection's RetinaNet and ATSS."""

from __future__ import annotations

from core.api import Register, impl, register_each
from plugdet_retinanet.atss_head import ATSSHead
from plugdet_retinanet.retina_head import RetinaHead
from plugdet_retinanet.retinanet import RetinaNet
from plugdet_retinanet.zoo import CONVERTERS


@impl
def register_heads(register: Register) -> None:
    register_each(register, RetinaHead, ATSSHead)


@impl
def register_detectors(register: Register) -> None:
    register_each(register, RetinaNet)


@impl
def register_weight_converters(register: Register) -> None:
    for converter in CONVERTERS:
        register(converter.name, converter.build)
