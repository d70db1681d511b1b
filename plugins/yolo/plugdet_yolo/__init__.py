"""YOLO detectors for plugdet: CSPDarknet backbones, PAFPN necks and the YOLO heads."""

from plugdet_yolo.backbones import YOLOv5CSPDarknet, YOLOv8CSPDarknet
from plugdet_yolo.necks import YOLOv5PAFPN, YOLOv8PAFPN

__all__ = ["YOLOv5CSPDarknet", "YOLOv5PAFPN", "YOLOv8CSPDarknet", "YOLOv8PAFPN"]
