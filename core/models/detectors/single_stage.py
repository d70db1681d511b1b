"""Single-stage detectors: backbone -> neck -> dense head."""

from __future__ import annotations

from typing import Annotated

import torch
from torch import Tensor

from core import contracts
from core.contracts import Backbone, Neck
from core.models.detectors.base import FeatureDetector, to_original
from core.registry import component
from core.structures import DetBatch, Instances


class SingleStageDetector(FeatureDetector):
    """Composes a backbone, an optional neck and a dense head (RetinaNet, YOLO, ...).

    :param backbone: images ``(B, 3, H, W)`` -> tuple of feature maps.
    :param head: pyramid levels -> losses / detections (contract
        :class:`core.contracts.DenseHead`).
    :param neck: feature maps -> pyramid levels (e.g. FPN), or None.
    :param channels_last: channels-last memory format (see :class:`FeatureDetector`).
    """

    def __init__(
        self,
        backbone: Annotated[Backbone, component("backbone")],
        head: Annotated[contracts.DenseHead, component("head")],
        neck: Annotated[Neck | None, component("neck")] = None,
        channels_last: bool = True,
    ) -> None:
        super().__init__(backbone, neck, channels_last)
        self.head = head
        self.finish_init()

    def loss(self, batch: DetBatch) -> dict[str, Tensor]:
        """The head's losses and scalars (e.g. ``loss_cls``, ``loss_bbox``, ``num_pos``)."""
        return self.head.loss(self.extract_feat(batch.images), batch.samples)

    @torch.no_grad()
    def predict(self, batch: DetBatch) -> list[Instances]:
        """One :class:`Instances` per image, boxes in original image coordinates."""
        results = self.head.predict(self.extract_feat(batch.images), batch.samples)
        return to_original(results, batch.samples)
