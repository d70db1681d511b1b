"""Entry point of the ``plugdet-faster-rcnn`` distribution: declares the ``roi_extractor``
stage and registers the extractor, the proposal selection, the heads, the detectors (Faster
and Mask R-CNN) and the weight converters of torchvision's and MMDetection's models."""

from __future__ import annotations

from core.api import DeclareStage, Register, impl, register_each
from plugdet_faster_rcnn.faster_rcnn import FasterRCNN
from plugdet_faster_rcnn.mask_rcnn import MaskRCNN, MaskRoIHead
from plugdet_faster_rcnn.proposals import ProposalNMS
from plugdet_faster_rcnn.roi_extractor import MultiLevelRoIAlign, RoIExtractor
from plugdet_faster_rcnn.roi_head import StandardRoIHead
from plugdet_faster_rcnn.rpn_head import RPNHead
from plugdet_faster_rcnn.zoo import CONVERTERS


@impl
def declare_stages(declare: DeclareStage) -> None:
    declare("roi_extractor", RoIExtractor, "fixed-size features of boxes from a pyramid")


@impl
def register_roi_extractors(register: Register) -> None:
    register_each(register, MultiLevelRoIAlign)


@impl
def register_postprocesses(register: Register) -> None:
    register_each(register, ProposalNMS)


@impl
def register_heads(register: Register) -> None:
    register_each(register, RPNHead, StandardRoIHead, MaskRoIHead)


@impl
def register_detectors(register: Register) -> None:
    register_each(register, FasterRCNN, MaskRCNN)


@impl
def register_weight_converters(register: Register) -> None:
    for converter in CONVERTERS:
        register(converter.name, converter.build)
