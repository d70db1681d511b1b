"""Modulated deformable convolution (DCNv2, Zhu et al., 2019) on ``torchvision.ops``."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torchvision.ops import deform_conv2d

from core.errors import ConfigError, require_positive_int

#: Name of the conv predicting offsets and masks; its parameters are new when pretrained
#: weights of the plain convolution this layer replaces are loaded.
OFFSET_CONV = "conv_offset"
OFFSET_AND_MASK = 3  # per sampling point: dy, dx and the mask logit


class ModulatedDeformConv2d(nn.Module):
    """DCNv2: ``x (B, C, H, W) -> (B, C_out, H', W')``, the output size of a plain conv.

    Each output position samples its ``k x k`` kernel points at learnt fractional offsets and
    multiplies them by a learnt mask in ``(0, 1)``; offsets and mask logits come from a conv
    (:data:`OFFSET_CONV`) initialised at zero, so training starts from the regular grid with
    masks 0.5. ``weight`` and ``bias`` are named as in ``nn.Conv2d``, so a plain conv's
    weights load into this layer.

    :param in_channels: ``C``, set by the network the layer is inserted into.
    :param out_channels: ``C_out``; None keeps ``C``.
    :param kernel_size: square kernel size ``k``.
    :param stride: convolution stride.
    :param padding: zero padding; None gives ``dilation * (k // 2)`` (size kept at stride 1).
    :param dilation: spacing of the regular grid.
    :param groups: convolution groups.
    :param deform_groups: channel groups with their own offsets and masks.
    :param bias: add a learnt bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        groups: int = 1,
        deform_groups: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        for key, value in (
            ("in_channels", in_channels),
            ("kernel_size", kernel_size),
            ("stride", stride),
            ("dilation", dilation),
        ):
            require_positive_int(key, value)
        for key, value in (("groups", groups), ("deform_groups", deform_groups)):
            if value < 1 or in_channels % value:
                raise ConfigError(
                    f"{key}: expected a positive divisor of in_channels {in_channels}, got {value}"
                )
        if out_channels % groups:
            raise ConfigError(f"groups: {groups} does not divide out_channels {out_channels}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.padding = dilation * (kernel_size // 2) if padding is None else padding
        self.dilation = dilation
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, kernel_size, kernel_size)
        )
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.conv_offset = nn.Conv2d(
            in_channels,
            deform_groups * OFFSET_AND_MASK * kernel_size * kernel_size,
            kernel_size,
            stride,
            self.padding,
            dilation,
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Conv2d``'s initialisation for the weights; zero offsets and mask logits."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        nn.init.zeros_(self.conv_offset.weight)
        if self.conv_offset.bias is not None:
            nn.init.zeros_(self.conv_offset.bias)

    def deform(self, x: Tensor, offset: Tensor, mask: Tensor) -> Tensor:
        """The deformable convolution with given sampling offsets and masks.

        :param x: ``(B, C, H, W)``.
        :param offset: ``(B, 2 * deform_groups * k * k, H', W')``, ``(dy, dx)`` per point.
        :param mask: ``(B, deform_groups * k * k, H', W')``.
        :returns: ``(B, C_out, H', W')``.
        """
        out: Tensor = deform_conv2d(
            x,
            offset,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            mask=mask,
        )
        return out

    def forward(self, x: Tensor) -> Tensor:
        """:param x: ``(B, C, H, W)``. :returns: ``(B, C_out, H', W')``."""
        dy_dx_first, dy_dx_second, mask_logits = torch.chunk(
            self.conv_offset(x), OFFSET_AND_MASK, dim=1
        )
        offset = torch.cat([dy_dx_first, dy_dx_second], dim=1)
        return self.deform(x, offset, torch.sigmoid(mask_logits))

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, "
            f"kernel_size={tuple(self.weight.shape[-2:])}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}"
        )
