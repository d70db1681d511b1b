"""Enhance layers inserted into backbones and necks: ``x (B, C, H, W) -> (B, C', H, W)``.

Attention layers (SE, CBAM, Non-local, ContextBlock) start as the identity; SPP/SPPF pool
at several scales; DCNv2 replaces a plain convolution. See ``docs/enhance.md``.
"""

from core.models.enhance.cbam import CBAM
from core.models.enhance.context_block import ContextBlock
from core.models.enhance.dcn import ModulatedDeformConv2d
from core.models.enhance.non_local import NonLocal2d
from core.models.enhance.se import SELayer
from core.models.enhance.spp import SPP, SPPF

__all__ = ["CBAM", "SPP", "SPPF", "ContextBlock", "ModulatedDeformConv2d", "NonLocal2d", "SELayer"]
