"""A varifocal loss (soft targets), a 1x1 neck and a box coder, registered with plugdet."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.api import WeightedLoss, clip_to_image, impl


class VarifocalLoss(WeightedLoss):
    """BCE to the soft target; positives weighted by it, negatives by alpha * p ** gamma."""

    cls_targets = "soft"  # the head gives (N, C) one_hot * IoU instead of class labels

    def __init__(self, alpha: float = 0.75, gamma: float = 2.0, loss_weight: float = 1.0):
        super().__init__(loss_weight)
        self.alpha, self.gamma = alpha, gamma

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:  # WeightedLoss weighs it
        focal = torch.where(target > 0, target, self.alpha * pred.sigmoid() ** self.gamma)
        return F.binary_cross_entropy_with_logits(pred, target, reduction="none") * focal


class OneByOneNeck(nn.ModuleList):
    """Every level to ``out_channels`` channels by its own 1x1 conv."""

    def __init__(self, in_channels: list[int], out_channels: int = 64):
        super().__init__(nn.Conv2d(c, out_channels, 1) for c in in_channels)

    def forward(self, feats: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return tuple(conv(x) for conv, x in zip(self, feats, strict=True))


class CornerCoder:
    """Box corners as offsets from the anchor's corners, in anchor widths and heights."""

    encode_size = 4

    def encode(self, priors: Tensor, boxes: Tensor, strides: Tensor | None = None) -> Tensor:
        return (boxes - priors) / (priors[..., 2:] - priors[..., :2]).tile(2)

    def decode(self, priors: Tensor, deltas: Tensor, max_shape: Tensor | None = None,
               strides: Tensor | None = None) -> Tensor:
        boxes = priors + deltas * (priors[..., 2:] - priors[..., :2]).tile(2)
        return boxes if max_shape is None else clip_to_image(boxes, max_shape)


@impl
def register_losses(register):
    register("VarifocalLoss", VarifocalLoss)


@impl
def register_necks(register):
    register("OneByOneNeck", OneByOneNeck)


@impl
def register_coders(register):
    register("CornerCoder", CornerCoder)
