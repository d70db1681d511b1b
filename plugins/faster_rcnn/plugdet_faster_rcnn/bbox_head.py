"""Shared2FC box head: two fully connected layers shared by classification and regression."""

from __future__ import annotations

from torch import Tensor, nn

from core.api import ConfigError

CLS_INIT_STD = 0.01
REG_INIT_STD = 0.001
BOX_SIZE = 4


class Shared2FCBBoxHead(nn.Module):
    """RoI features -> flatten -> FC + ReLU -> FC + ReLU -> class logits (C foreground and a
    background logit, last) and class-specific box deltas.

    :param num_classes: foreground classes C.
    :param in_channels: channels of the RoI features.
    :param roi_size: height and width of the RoI features.
    :param fc_channels: width of both shared FC layers.
    :param box_size: values per box delta (the coder's ``encode_size``).
    """

    def __init__(self, num_classes: int, in_channels: int = 256, roi_size: int = 7,
                 fc_channels: int = 1024, box_size: int = BOX_SIZE) -> None:
        super().__init__()
        if num_classes < 1 or fc_channels < 1:
            raise ConfigError(f"num_classes/fc_channels: expected positive ints, got "
                              f"{num_classes}, {fc_channels}")
        self.num_classes = num_classes
        self.box_size = box_size
        self.shared_fcs = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * roi_size * roi_size, fc_channels),
            nn.ReLU(inplace=True),
            nn.Linear(fc_channels, fc_channels),
            nn.ReLU(inplace=True),
        )
        self.fc_cls = nn.Linear(fc_channels, num_classes + 1)
        self.fc_reg = nn.Linear(fc_channels, num_classes * box_size)
        for layer in self.shared_fcs:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        nn.init.normal_(self.fc_cls.weight, std=CLS_INIT_STD)
        nn.init.normal_(self.fc_reg.weight, std=REG_INIT_STD)
        nn.init.zeros_(self.fc_cls.bias)
        nn.init.zeros_(self.fc_reg.bias)

    def forward(self, roi_feats: Tensor) -> tuple[Tensor, Tensor]:
        """:param roi_feats: ``(K, in_channels, roi_size, roi_size)``.
        :returns: ``(K, C + 1)`` class logits (background last) and ``(K, C, box_size)``
            deltas."""
        hidden = self.shared_fcs(roi_feats)
        deltas = self.fc_reg(hidden).view(len(roi_feats), self.num_classes, self.box_size)
        return self.fc_cls(hidden), deltas
