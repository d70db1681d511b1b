"""RT-DETR for plugdet: ResNet-vd backbones, the hybrid encoder, the deformable decoder with
denoising queries, Hungarian matching and set losses; detections by top-k without NMS."""

from plugdet_detr.hybrid_encoder import HybridEncoder
from plugdet_detr.resnet_vd import ResNetVd
from plugdet_detr.rtdetr import RTDETR, RTDETRHead

__all__ = ["RTDETR", "HybridEncoder", "RTDETRHead", "ResNetVd"]
