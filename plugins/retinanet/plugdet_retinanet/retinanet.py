"""The RetinaNet detector: backbone -> neck -> dense head."""

from __future__ import annotations

from typing import Annotated

import torch
from torch import Tensor, nn

from core.models.postprocess import rescale_to_original
from core.registry import component
from core.structures import DetBatch, Instances
from plugdet_retinanet.retina_head import RetinaHead


class RetinaNet(nn.Module):
    """Single-stage detector composing a backbone, an optional neck and a :class:`RetinaHead`.

    :param backbone: images ``(B, 3, H, W)`` -> tuple of feature maps.
    :param neck: feature maps -> pyramid levels (e.g. FPN), or None.
    :param head: pyramid levels -> losses / detections.
    :param channels_last: keep weights and feature maps in channels-last memory format
        (``torch.channels_last``), which speeds convolutions up on GPUs with tensor cores and
        on some CPUs (measure with ``bench/bench_retinanet.py``); results agree with the
        default format up to float rounding.
    """

    def __init__(
        self,
        backbone: Annotated[nn.Module, component("backbone")],
        head: Annotated[RetinaHead, component("head")],
        neck: Annotated[nn.Module | None, component("neck")] = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.head = head
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def extract_feat(self, images: Tensor) -> tuple[Tensor, ...]:
        """:param images: ``(B, 3, H, W)`` normalised float images.
        :returns: neck outputs (backbone outputs without a neck), finest first."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        feats = self.backbone(images)
        return self.neck(feats) if self.neck is not None else tuple(feats)

    def loss(self, batch: DetBatch) -> dict[str, Tensor]:
        """:returns: ``{"loss_cls": scalar, "loss_bbox": scalar}``."""
        return self.head.loss(self.extract_feat(batch.images), batch.samples)

    @torch.no_grad()
    def predict(self, batch: DetBatch) -> list[Instances]:
        """:returns: one :class:`Instances` per image, boxes in original image coordinates."""
        results = self.head.predict(self.extract_feat(batch.images), batch.samples)
        return [rescale_to_original(r, s) for r, s in zip(results, batch.samples, strict=True)]

    def forward(self, batch: DetBatch) -> dict[str, Tensor] | list[Instances]:
        """Losses in training mode, detections in eval mode."""
        return self.loss(batch) if self.training else self.predict(batch)
