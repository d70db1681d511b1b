"""Entry point of the ``plugdet-yolo`` distribution: registers the YOLO backbones, necks,
heads (YOLOv8-seg's with masks), the detector, the letterbox and HSV transforms, YOLOX's
coder and mode-switch hook, RTMDet's parts, and the weight converters of ultralytics',
YOLOv5's and MMYOLO's checkpoints."""

from __future__ import annotations

from core.api import Register, impl, register_each
from plugdet_yolo.backbones import YOLOv5CSPDarknet, YOLOv8CSPDarknet
from plugdet_yolo.cspnext import CSPNeXt
from plugdet_yolo.cspnext_pafpn import CSPNeXtPAFPN
from plugdet_yolo.detector import YOLODetector
from plugdet_yolo.hooks import ModeSwitchHook
from plugdet_yolo.necks import YOLOv5PAFPN, YOLOv8PAFPN
from plugdet_yolo.rtmdet_head import RTMDetHead
from plugdet_yolo.transforms import LetterResize, YOLOv5HSVRandomAug
from plugdet_yolo.yolov5_assigner import YOLOv5ShapeMatchAssigner
from plugdet_yolo.yolov5_coder import YOLOv5BoxCoder
from plugdet_yolo.yolov5_head import YOLOv5Head
from plugdet_yolo.yolov8_head import YOLOv8Head
from plugdet_yolo.yolov8_seg_head import YOLOv8SegHead
from plugdet_yolo.yolox_backbone import YOLOXCSPDarknet
from plugdet_yolo.yolox_coder import YOLOXBoxCoder
from plugdet_yolo.yolox_head import YOLOXHead
from plugdet_yolo.yolox_neck import YOLOXPAFPN
from plugdet_yolo.zoo.converters import CONVERTERS


@impl
def register_backbones(register: Register) -> None:
    register_each(register, YOLOv5CSPDarknet, YOLOv8CSPDarknet, YOLOXCSPDarknet, CSPNeXt)


@impl
def register_necks(register: Register) -> None:
    register_each(register, YOLOv5PAFPN, YOLOv8PAFPN, YOLOXPAFPN, CSPNeXtPAFPN)


@impl
def register_heads(register: Register) -> None:
    register_each(register, YOLOv8Head, YOLOv8SegHead, YOLOv5Head, YOLOXHead, RTMDetHead)


@impl
def register_detectors(register: Register) -> None:
    register_each(register, YOLODetector)


@impl
def register_assigners(register: Register) -> None:
    register_each(register, YOLOv5ShapeMatchAssigner)


@impl
def register_coders(register: Register) -> None:
    register_each(register, YOLOv5BoxCoder, YOLOXBoxCoder)


@impl
def register_transforms(register: Register) -> None:
    register_each(register, LetterResize, YOLOv5HSVRandomAug)


@impl
def register_hooks(register: Register) -> None:
    register_each(register, ModeSwitchHook)


@impl
def register_weight_converters(register: Register) -> None:
    for converter in CONVERTERS:
        register(converter.name, converter.build)
