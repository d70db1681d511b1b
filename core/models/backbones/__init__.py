"""Backbones: image tensor (B, 3, H, W) -> tuple of feature maps."""

from core.models.backbones.resnet import ResNet
from core.models.backbones.tiny_net import TinyNet

__all__ = ["ResNet", "TinyNet"]
