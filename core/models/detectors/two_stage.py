"""Two-stage detectors: backbone -> neck -> proposal head -> RoI head."""

from __future__ import annotations

from typing import Annotated

import torch
from torch import Tensor

from core.contracts import Backbone, Neck, ProposalHead, RoIHead
from core.models.detectors.base import FeatureDetector, to_original
from core.registry import component
from core.structures import DetBatch, Instances


class TwoStageDetector(FeatureDetector):
    """Composes a backbone, an optional neck, a proposal head and an RoI head.

    The proposal head (contract :class:`core.contracts.ProposalHead`) gives losses and
    per-image proposals in training (``loss_and_proposals(feats, samples)``) and proposals at
    test time (``predict(feats, samples)``); the RoI head (contract
    :class:`core.contracts.RoIHead`) refines them: ``loss(feats, proposals, samples)`` and
    ``predict(feats, proposals, samples)``. Loss keys of the two stages must differ (e.g.
    ``loss_rpn_cls`` and ``loss_cls``).

    :param backbone: images ``(B, 3, H, W)`` -> tuple of feature maps.
    :param rpn_head: pyramid levels -> objectness losses and proposals.
    :param roi_head: pyramid levels and proposals -> losses / detections.
    :param neck: feature maps -> pyramid levels (e.g. FPN), or None.
    :param channels_last: channels-last memory format (see :class:`FeatureDetector`).
    """

    def __init__(
        self,
        backbone: Annotated[Backbone, component("backbone")],
        rpn_head: Annotated[ProposalHead, component("head")],
        roi_head: Annotated[RoIHead, component("head")],
        neck: Annotated[Neck | None, component("neck")] = None,
        channels_last: bool = True,
    ) -> None:
        super().__init__(backbone, neck, channels_last)
        self.rpn_head = rpn_head
        self.roi_head = roi_head
        self.finish_init()

    def loss(self, batch: DetBatch) -> dict[str, Tensor]:
        """Both stages' losses and scalars in one dict."""
        feats = self.extract_feat(batch.images)
        losses, proposals = self.rpn_head.loss_and_proposals(feats, batch.samples)
        roi_losses = self.roi_head.loss(feats, proposals, batch.samples)
        clash = sorted(set(losses) & set(roi_losses))
        if clash:
            raise ValueError(f"the proposal and RoI heads both return {clash}")
        return {**losses, **roi_losses}

    @torch.no_grad()
    def predict(self, batch: DetBatch) -> list[Instances]:
        """One :class:`Instances` per image, boxes in original image coordinates."""
        feats = self.extract_feat(batch.images)
        proposals = self.rpn_head.predict(feats, batch.samples)
        results = self.roi_head.predict(feats, proposals, batch.samples)
        return to_original(results, batch.samples)
