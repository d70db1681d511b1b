"""Losses with ``loss_weight``, ``reduction`` and an optional ``avg_factor`` normaliser."""

from core.models.losses.ciou_loss import CIoULoss
from core.models.losses.cross_entropy_loss import CrossEntropyLoss
from core.models.losses.distribution_focal_loss import DistributionFocalLoss
from core.models.losses.focal_loss import FocalLoss
from core.models.losses.giou_loss import GIoULoss
from core.models.losses.iou_loss import IoULoss
from core.models.losses.l1_loss import L1Loss, SmoothL1Loss
from core.models.losses.quality_focal_loss import QualityFocalLoss

__all__ = ["CIoULoss", "CrossEntropyLoss", "DistributionFocalLoss", "FocalLoss", "GIoULoss",
           "IoULoss", "L1Loss", "QualityFocalLoss", "SmoothL1Loss"]
