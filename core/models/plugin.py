"""Built-in plugin registering the standard model parts through the ordinary hooks."""

from __future__ import annotations

from core import impl
from core.hookspecs import Register
from core.models.assigners import (
    ATSSAssigner,
    DynamicSoftLabelAssigner,
    MaxIoUAssigner,
    SimOTAAssigner,
    TaskAlignedAssigner,
)
from core.models.backbones import ResNet, TinyNet
from core.models.coders import DeltaXYWHBBoxCoder, DistancePointBBoxCoder, LogDistancePointCoder
from core.models.detectors import SingleStageDetector, TwoStageDetector
from core.models.enhance import (
    CBAM,
    SPP,
    SPPF,
    ContextBlock,
    ModulatedDeformConv2d,
    NonLocal2d,
    SELayer,
)
from core.models.losses import (
    CIoULoss,
    CrossEntropyLoss,
    DistributionFocalLoss,
    FocalLoss,
    GIoULoss,
    IoULoss,
    L1Loss,
    QualityFocalLoss,
    SmoothL1Loss,
)
from core.models.necks import FPN
from core.models.postprocess import MultiClassNMS
from core.models.priors import AnchorGenerator, PointGenerator
from core.models.samplers import PseudoSampler, RandomSampler
from core.registry import register_each


@impl
def register_backbones(register: Register) -> None:
    register_each(register, ResNet, TinyNet)


@impl
def register_necks(register: Register) -> None:
    register_each(register, FPN)


@impl
def register_enhance_layers(register: Register) -> None:
    register_each(register, SPP, SPPF, CBAM, NonLocal2d, ContextBlock,
                  SE=SELayer, DCNv2=ModulatedDeformConv2d)


@impl
def register_prior_generators(register: Register) -> None:
    register_each(register, AnchorGenerator, PointGenerator)


@impl
def register_assigners(register: Register) -> None:
    register_each(register, MaxIoUAssigner, ATSSAssigner, SimOTAAssigner,
                  DynamicSoftLabelAssigner, TaskAlignedAssigner)


@impl
def register_samplers(register: Register) -> None:
    register_each(register, PseudoSampler, RandomSampler)


@impl
def register_coders(register: Register) -> None:
    register_each(register, DeltaXYWHBBoxCoder, LogDistancePointCoder, DistancePointBBoxCoder)


@impl
def register_losses(register: Register) -> None:
    register_each(register, FocalLoss, CrossEntropyLoss, L1Loss, SmoothL1Loss, GIoULoss,
                  CIoULoss, IoULoss, DistributionFocalLoss, QualityFocalLoss)


@impl
def register_postprocesses(register: Register) -> None:
    register_each(register, MultiClassNMS)


@impl
def register_detectors(register: Register) -> None:
    register_each(register, SingleStageDetector, TwoStageDetector)
