"""YOLO detectors for plugdet: CSPDarknet backbones, PAFPN necks and the YOLO heads
(YOLOv5, YOLOv8, YOLOX)."""

from plugdet_yolo.backbones import YOLOv5CSPDarknet, YOLOv8CSPDarknet
from plugdet_yolo.detector import YOLODetector
from plugdet_yolo.necks import YOLOv5PAFPN, YOLOv8PAFPN
from plugdet_yolo.yolov8_head import YOLOv8Head
from plugdet_yolo.yolox_backbone import YOLOXCSPDarknet
from plugdet_yolo.yolox_head import YOLOXHead
from plugdet_yolo.yolox_neck import YOLOXPAFPN

__all__ = ["YOLOXPAFPN", "YOLODetector", "YOLOXCSPDarknet", "YOLOXHead", "YOLOv5CSPDarknet",
           "YOLOv5PAFPN", "YOLOv8CSPDarknet", "YOLOv8Head", "YOLOv8PAFPN"]
