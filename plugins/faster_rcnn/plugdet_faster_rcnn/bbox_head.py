"""Box head of the RoI head: convs and fully connected layers shared by classification and
regression (Shared2FC by default, torchvision's 4conv1fc for ``fasterrcnn_resnet50_fpn_v2``)."""

from __future__ import annotations

from torch import Tensor, nn

from core.api import ConfigError

CLS_INIT_STD = 0.01
REG_INIT_STD = 0.001
BOX_SIZE = 4
CONV_KERNEL = 3


class ConvFCBBoxHead(nn.Module):
    """RoI features -> ``num_convs`` x (3x3 conv without bias, BatchNorm, ReLU) -> flatten ->
    ``num_fcs`` x (FC + ReLU) -> class logits (C foreground and a background logit, last) and
    class-specific box deltas. The defaults are the Shared2FC head of MMDetection and
    torchvision's ``TwoMLPHead``; 4 convs and 1 FC are torchvision's ``FastRCNNConvFCHead``.

    Parameters: ``shared_convs.{3i}`` conv and ``shared_convs.{3i+1}`` BatchNorm of conv
    ``i``; ``shared_fcs.{2j+1}`` FC ``j`` (``shared_fcs.0`` flattens).

    :param num_classes: foreground classes C.
    :param in_channels: channels of the RoI features (and of the convs).
    :param roi_size: height and width of the RoI features.
    :param fc_channels: width of every shared FC layer.
    :param box_size: values per box delta (the coder's ``encode_size``).
    :param num_convs: shared conv layers before the FC layers.
    :param num_fcs: shared FC layers (at least 1).
    """

    def __init__(self, num_classes: int, in_channels: int = 256, roi_size: int = 7,
                 fc_channels: int = 1024, box_size: int = BOX_SIZE, num_convs: int = 0,
                 num_fcs: int = 2) -> None:
        super().__init__()
        if num_classes < 1 or fc_channels < 1:
            raise ConfigError(f"num_classes/fc_channels: expected positive ints, got "
                              f"{num_classes}, {fc_channels}")
        if num_convs < 0 or num_fcs < 1:
            raise ConfigError(f"num_shared_convs/num_shared_fcs: expected >= 0 and >= 1, got "
                              f"{num_convs}, {num_fcs}")
        self.num_classes = num_classes
        self.box_size = box_size
        convs: list[nn.Module] = []
        for _ in range(num_convs):
            convs += [nn.Conv2d(in_channels, in_channels, CONV_KERNEL,
                                padding=CONV_KERNEL // 2, bias=False),
                      nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True)]
        self.shared_convs = nn.Sequential(*convs)
        fcs: list[nn.Module] = [nn.Flatten()]
        for index in range(num_fcs):
            width = in_channels * roi_size * roi_size if index == 0 else fc_channels
            fcs += [nn.Linear(width, fc_channels), nn.ReLU(inplace=True)]
        self.shared_fcs = nn.Sequential(*fcs)
        self.fc_cls = nn.Linear(fc_channels, num_classes + 1)
        self.fc_reg = nn.Linear(fc_channels, num_classes * box_size)
        for layer in self.shared_convs:
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
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
        hidden = self.shared_fcs(self.shared_convs(roi_feats))
        deltas = self.fc_reg(hidden).view(len(roi_feats), self.num_classes, self.box_size)
        return self.fc_cls(hidden), deltas
