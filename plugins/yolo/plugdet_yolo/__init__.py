"""YOLO detectors for plugdet: CSPDarknet backbones, PAFPN necks and the YOLO heads."""

from plugdet_yolo.backbones import YOLOv5CSPDarknet, YOLOv8CSPDarknet
from plugdet_yolo.detector import YOLODetector
from plugdet_yolo.necks import YOLOv5PAFPN, YOLOv8PAFPN
from plugdet_yolo.yolov8_head import YOLOv8Head

__all__ = ["YOLODetector", "YOLOv5CSPDarknet", "YOLOv5PAFPN", "YOLOv8CSPDarknet",
           "YOLOv8Head", "YOLOv8PAFPN"]
