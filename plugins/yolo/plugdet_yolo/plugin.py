"""Entry point of the ``plugdet-yolo`` distribution: registers the YOLO backbones, necks,
heads and the detector, and those of RTMDet."""

from __future__ import annotations

from core import impl
from core.hookspecs import Register
from plugdet_yolo.backbones import YOLOv5CSPDarknet, YOLOv8CSPDarknet
from plugdet_yolo.cspnext import CSPNeXt
from plugdet_yolo.cspnext_pafpn import CSPNeXtPAFPN
from plugdet_yolo.detector import YOLODetector
from plugdet_yolo.necks import YOLOv5PAFPN, YOLOv8PAFPN
from plugdet_yolo.rtmdet_head import RTMDetHead
from plugdet_yolo.yolov5_assigner import YOLOv5ShapeMatchAssigner
from plugdet_yolo.yolov5_coder import YOLOv5BoxCoder
from plugdet_yolo.yolov5_head import YOLOv5Head
from plugdet_yolo.yolov8_head import YOLOv8Head


@impl
def register_backbones(register: Register) -> None:
    register("YOLOv5CSPDarknet", YOLOv5CSPDarknet)
    register("YOLOv8CSPDarknet", YOLOv8CSPDarknet)


@impl
def register_necks(register: Register) -> None:
    register("YOLOv5PAFPN", YOLOv5PAFPN)
    register("YOLOv8PAFPN", YOLOv8PAFPN)


@impl
def register_heads(register: Register) -> None:
    register("YOLOv8Head", YOLOv8Head)
    register("YOLOv5Head", YOLOv5Head)


@impl
def register_detectors(register: Register) -> None:
    register("YOLODetector", YOLODetector)


@impl
def register_assigners(register: Register) -> None:
    register("YOLOv5ShapeMatchAssigner", YOLOv5ShapeMatchAssigner)


@impl
def register_coders(register: Register) -> None:
    register("YOLOv5BoxCoder", YOLOv5BoxCoder)


# ---- RTMDet ------------------------------------------------------------------------------

@impl(specname="register_backbones")
def register_rtmdet_backbones(register: Register) -> None:
    register("CSPNeXt", CSPNeXt)


@impl(specname="register_necks")
def register_rtmdet_necks(register: Register) -> None:
    register("CSPNeXtPAFPN", CSPNeXtPAFPN)


@impl(specname="register_heads")
def register_rtmdet_heads(register: Register) -> None:
    register("RTMDetHead", RTMDetHead)
