"""Entry point of the ``plugdet-faster-rcnn`` distribution: declares the ``roi_extractor``
stage and registers the extractor, the proposal selection, the heads and the detector."""

from __future__ import annotations

from core.api import DeclareStage, Register, impl
from plugdet_faster_rcnn.faster_rcnn import FasterRCNN
from plugdet_faster_rcnn.proposals import ProposalNMS
from plugdet_faster_rcnn.roi_extractor import MultiLevelRoIAlign, RoIExtractor
from plugdet_faster_rcnn.roi_head import StandardRoIHead
from plugdet_faster_rcnn.rpn_head import RPNHead


@impl
def declare_stages(declare: DeclareStage) -> None:
    declare("roi_extractor", RoIExtractor, "fixed-size features of boxes from a pyramid")


@impl
def register_roi_extractors(register: Register) -> None:
    register("MultiLevelRoIAlign", MultiLevelRoIAlign)


@impl
def register_postprocesses(register: Register) -> None:
    register("ProposalNMS", ProposalNMS)


@impl
def register_heads(register: Register) -> None:
    register("RPNHead", RPNHead)
    register("StandardRoIHead", StandardRoIHead)


@impl
def register_detectors(register: Register) -> None:
    register("FasterRCNN", FasterRCNN)
