"""Necks: tuple of backbone feature maps -> tuple of fused feature maps."""

from core.models.necks.fpn import FPN

__all__ = ["FPN"]
