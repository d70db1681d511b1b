"""What every detector in core shares: backbone -> optional neck, channels-last option, and
the train/eval dispatch of ``forward``."""

from __future__ import annotations

import abc

import torch
from torch import Tensor, nn

from core.contracts import Backbone, Neck
from core.structures import DetBatch, DetSample, Instances


class FeatureDetector(nn.Module, metaclass=abc.ABCMeta):
    """Backbone -> optional neck, shared by the single- and two-stage detectors.

    :param backbone: images ``(B, 3, H, W)`` -> tuple of feature maps.
    :param neck: feature maps -> pyramid levels (e.g. FPN), or None.
    :param channels_last: keep weights and feature maps in channels-last memory format
        (``torch.channels_last``; default), which speeds convolutions up on GPUs with tensor
        cores and on the CPUs measured: every detector family trained and predicted faster
        with it, in float32 and in bf16 (``bench/bench_defaults.py``); results agree with
        the contiguous (NCHW) format up to float rounding. ``false`` keeps NCHW.
    """

    def __init__(self, backbone: Backbone, neck: Neck | None = None,
                 channels_last: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.channels_last = channels_last

    def finish_init(self) -> None:
        """Apply the memory format once every submodule exists."""
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    def extract_feat(self, images: Tensor) -> tuple[Tensor, ...]:
        """:param images: ``(B, 3, H, W)`` normalised float images.
        :returns: neck outputs (backbone outputs without a neck), finest first."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        feats = self.backbone(images)
        return self.neck(feats) if self.neck is not None else tuple(feats)

    @abc.abstractmethod
    def loss(self, batch: DetBatch) -> dict[str, Tensor]:
        """Losses (``loss*`` keys) and logged scalars of a batch."""

    @abc.abstractmethod
    def predict(self, batch: DetBatch) -> list[Instances]:
        """One :class:`Instances` per image, boxes in original image coordinates."""

    def forward(self, batch: DetBatch) -> dict[str, Tensor] | list[Instances]:
        """Losses in training mode, detections in eval mode."""
        return self.loss(batch) if self.training else self.predict(batch)


def to_original(results: list[Instances], samples: list[DetSample]) -> list[Instances]:
    """Map per-image detections from ``img_shape`` to original image pixels, clipped to the
    image (:meth:`DetSample.instances_to_original`: flip undone, letterbox shift removed,
    divided by the scale factor)."""
    return [s.instances_to_original(r, clip=True) for r, s in zip(results, samples, strict=True)]
