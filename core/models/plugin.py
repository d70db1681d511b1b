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


@impl
def register_backbones(register: Register) -> None:
    register("ResNet", ResNet)
    register("TinyNet", TinyNet)


@impl
def register_necks(register: Register) -> None:
    register("FPN", FPN)


@impl
def register_enhance_layers(register: Register) -> None:
    register("SPP", SPP)
    register("SPPF", SPPF)
    register("SE", SELayer)
    register("CBAM", CBAM)
    register("NonLocal2d", NonLocal2d)
    register("ContextBlock", ContextBlock)
    register("DCNv2", ModulatedDeformConv2d)


@impl
def register_prior_generators(register: Register) -> None:
    register("AnchorGenerator", AnchorGenerator)
    register("PointGenerator", PointGenerator)


@impl
def register_assigners(register: Register) -> None:
    register("MaxIoUAssigner", MaxIoUAssigner)
    register("ATSSAssigner", ATSSAssigner)
    register("SimOTAAssigner", SimOTAAssigner)
    register("DynamicSoftLabelAssigner", DynamicSoftLabelAssigner)
    register("TaskAlignedAssigner", TaskAlignedAssigner)


@impl
def register_samplers(register: Register) -> None:
    register("PseudoSampler", PseudoSampler)
    register("RandomSampler", RandomSampler)


@impl
def register_coders(register: Register) -> None:
    register("DeltaXYWHBBoxCoder", DeltaXYWHBBoxCoder)
    register("LogDistancePointCoder", LogDistancePointCoder)
    register("DistancePointBBoxCoder", DistancePointBBoxCoder)


@impl
def register_losses(register: Register) -> None:
    register("FocalLoss", FocalLoss)
    register("CrossEntropyLoss", CrossEntropyLoss)
    register("L1Loss", L1Loss)
    register("SmoothL1Loss", SmoothL1Loss)
    register("GIoULoss", GIoULoss)
    register("CIoULoss", CIoULoss)
    register("IoULoss", IoULoss)
    register("DistributionFocalLoss", DistributionFocalLoss)
    register("QualityFocalLoss", QualityFocalLoss)


@impl
def register_postprocesses(register: Register) -> None:
    register("MultiClassNMS", MultiClassNMS)


@impl
def register_detectors(register: Register) -> None:
    register("SingleStageDetector", SingleStageDetector)
    register("TwoStageDetector", TwoStageDetector)
