"""Mask head of Mask R-CNN: a small fully convolutional network on the RoI features that
predicts one mask per class at twice the RoI feature size."""

from __future__ import annotations

from torch import Tensor, nn

from core.api import ConfigError

CONV_KERNEL = 3
UPSAMPLE_FACTOR = 2


class FCNMaskHead(nn.Module):
    """RoI features ``(K, C_in, S, S)`` -> ``num_convs`` x (3x3 conv + ReLU) -> 2x2 transposed
    conv with stride 2 + ReLU -> 1x1 conv -> class-specific mask logits ``(K, C, 2S, 2S)``
    (He et al., 2017; with 14x14 RoI features the masks are 28x28).

    Parameters: ``convs.{i}`` conv ``i``, ``upsample`` the transposed conv, ``conv_logits``
    the class predictor (MMDetection's ``FCNMaskHead`` names without its ``.conv`` wrappers).
    Weights are He-normal (fan out), biases zero, as in torchvision.

    :param num_classes: foreground classes C (no background channel).
    :param in_channels: channels of the RoI features.
    :param conv_channels: width of every conv and of the transposed conv.
    :param num_convs: 3x3 conv layers before the upsampling.
    """

    def __init__(self, num_classes: int, in_channels: int = 256, conv_channels: int = 256,
                 num_convs: int = 4) -> None:
        super().__init__()
        if num_classes < 1 or conv_channels < 1 or num_convs < 0:
            raise ConfigError(f"num_classes/mask_channels/num_mask_convs: expected positive, "
                              f"positive and >= 0 ints, got {num_classes}, {conv_channels}, "
                              f"{num_convs}")
        self.num_classes = num_classes
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels if index == 0 else conv_channels, conv_channels, CONV_KERNEL,
                      padding=CONV_KERNEL // 2)
            for index in range(num_convs))
        last = conv_channels if num_convs else in_channels
        self.upsample = nn.ConvTranspose2d(last, conv_channels, UPSAMPLE_FACTOR,
                                           stride=UPSAMPLE_FACTOR)
        self.conv_logits = nn.Conv2d(conv_channels, num_classes, 1)
        self.relu = nn.ReLU(inplace=True)
        for layer in (*self.convs, self.upsample, self.conv_logits):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)

    def forward(self, roi_feats: Tensor) -> Tensor:
        """:param roi_feats: ``(K, in_channels, S, S)``.
        :returns: ``(K, C, 2S, 2S)`` mask logits."""
        hidden = roi_feats
        for conv in self.convs:
            hidden = self.relu(conv(hidden))
        logits: Tensor = self.conv_logits(self.relu(self.upsample(hidden)))
        return logits
