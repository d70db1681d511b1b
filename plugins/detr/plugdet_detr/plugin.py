"""Entry point of the ``plugdet-detr`` distribution: registers the ResNet-vd backbone, the
hybrid encoder (a neck), the RT-DETR head and detector, the Hungarian assigner and the converters
of the original RT-DETR checkpoints."""

from __future__ import annotations

from core.api import Register, impl, register_each
from plugdet_detr.hungarian_assigner import HungarianAssigner
from plugdet_detr.hybrid_encoder import HybridEncoder
from plugdet_detr.resnet_vd import ResNetVd
from plugdet_detr.rtdetr import RTDETR, RTDETRHead
from plugdet_detr.zoo import CONVERTERS


@impl
def register_backbones(register: Register) -> None:
    register_each(register, ResNetVd)


@impl
def register_necks(register: Register) -> None:
    register_each(register, HybridEncoder)


@impl
def register_heads(register: Register) -> None:
    register_each(register, RTDETRHead)


@impl
def register_detectors(register: Register) -> None:
    register_each(register, RTDETR)


@impl
def register_assigners(register: Register) -> None:
    register_each(register, HungarianAssigner)


@impl
def register_weight_converters(register: Register) -> None:
    for converter in CONVERTERS:
        register(converter.name, converter.build)
