"""Mask R-CNN (He et al., 2017): Faster R-CNN's RoI head with a mask branch next to the box
branch, and the detector that composes it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch
from torch import Tensor

from core.api import (
    AssignerPart,
    Buildable,
    CoderPart,
    ConfigError,
    DetSample,
    Instances,
    LossPart,
    PostProcessPart,
    SamplerPart,
    TwoStageDetector,
    build_part,
    component,
    float32_region,
)
from plugdet_faster_rcnn.mask_head import UPSAMPLE_FACTOR, FCNMaskHead
from plugdet_faster_rcnn.mask_paste import flip_masks, paste_masks
from plugdet_faster_rcnn.mask_targets import (
    class_channel,
    gt_polygon_masks,
    polygon_mask_targets,
)
from plugdet_faster_rcnn.roi_extractor import RoIExtractor, rois_from_boxes
from plugdet_faster_rcnn.roi_head import (
    DEFAULT_ASSIGNER,
    DEFAULT_CODER,
    DEFAULT_LOSS_BBOX,
    DEFAULT_LOSS_CLS,
    DEFAULT_POSTPROCESS,
    DEFAULT_ROI_EXTRACTOR,
    DEFAULT_SAMPLER,
    StandardRoIHead,
)
from plugdet_faster_rcnn.roi_path import RoITargets

DEFAULT_MASK_ROI_EXTRACTOR = {"type": "MultiLevelRoIAlign", "out_size": 14}
DEFAULT_LOSS_MASK = {"type": "CrossEntropyLoss", "use_sigmoid": True}


class MaskRoIHead(StandardRoIHead):
    """:class:`~plugdet_faster_rcnn.roi_head.StandardRoIHead` with a mask branch.

    Training: the positive sampled RoIs' features (``mask_roi_extractor``, 14x14 by default)
    go through :class:`~plugdet_faster_rcnn.mask_head.FCNMaskHead`; the target of each is
    its matched gt mask cropped to the RoI and rasterised at the head's output size (28x28);
    ``loss_mask`` (binary cross-entropy with logits) on the gt-class channel, averaged over
    the positives' pixels.
    Test: the detections' masks (sigmoid of the predicted class's channel) are pasted into
    the original image (:func:`~plugdet_faster_rcnn.mask_paste.paste_masks`) and binarised at
    ``mask_threshold``: ``Instances.masks`` ``(N, H_ori, W_ori)`` bool, boxes in
    ``img_shape`` pixels as the box branch gives them.

    The box-branch parameters are :class:`StandardRoIHead`'s.

    :param mask_roi_extractor: RoI features of the mask branch.
    :param mask_channels: width of the mask head's convs.
    :param num_mask_convs: 3x3 convs of the mask head.
    :param loss_mask: per-pixel loss of ``(P, S * S)`` logits against ``(P, S * S)`` {0, 1}
        targets.
    :param mask_threshold: probability from which a pixel is part of a predicted mask.
    """

    def __init__(
        self,
        num_classes: int = 80,
        in_channels: int = 256,
        fc_channels: int = 1024,
        roi_extractor: Annotated[Buildable[RoIExtractor],
                                 component("roi_extractor")] = DEFAULT_ROI_EXTRACTOR,
        assigner: AssignerPart = DEFAULT_ASSIGNER,
        sampler: SamplerPart = DEFAULT_SAMPLER,
        bbox_coder: CoderPart = DEFAULT_CODER,
        loss_cls: LossPart = DEFAULT_LOSS_CLS,
        loss_bbox: LossPart = DEFAULT_LOSS_BBOX,
        postprocess: PostProcessPart = DEFAULT_POSTPROCESS,
        min_bbox_size: float = 1e-2,
        num_shared_convs: int = 0,
        num_shared_fcs: int = 2,
        mask_roi_extractor: Annotated[Buildable[RoIExtractor],
                                      component("roi_extractor")] = DEFAULT_MASK_ROI_EXTRACTOR,
        mask_channels: int = 256,
        num_mask_convs: int = 4,
        loss_mask: LossPart = DEFAULT_LOSS_MASK,
        mask_threshold: float = 0.5,
    ) -> None:
        super().__init__(num_classes, in_channels, fc_channels, roi_extractor, assigner,
                         sampler, bbox_coder, loss_cls, loss_bbox, postprocess, min_bbox_size,
                         num_shared_convs, num_shared_fcs)
        if not 0.0 <= mask_threshold <= 1.0:
            raise ConfigError(f"mask_threshold: expected a value in [0, 1], got "
                              f"{mask_threshold}")
        self.mask_roi_extractor = build_part("roi_extractor", mask_roi_extractor,
                                             "mask_roi_extractor")
        self.mask_head = FCNMaskHead(num_classes, in_channels, mask_channels, num_mask_convs)
        self.loss_mask = build_part("loss", loss_mask, "loss_mask")
        self.mask_threshold = mask_threshold

    @property
    def mask_size(self) -> int:
        """Side of the predicted masks and of their targets (28 with 14x14 RoI features)."""
        return int(self.mask_roi_extractor.out_size) * UPSAMPLE_FACTOR

    def mask_logits(self, feats: tuple[Tensor, ...], rois: Tensor) -> Tensor:
        """:param rois: ``(K, 5)`` ``(image index, x1, y1, x2, y2)``.
        :returns: ``(K, C, S, S)`` class-specific mask logits."""
        logits: Tensor = self.mask_head(self.mask_roi_extractor.extract(feats, rois))
        return logits

    # ---- training ----------------------------------------------------------------------

    def mask_targets(self, targets: RoITargets, samples: Sequence[DetSample]) -> Tensor:
        """``(P, S, S)`` targets of the positive RoIs (in their order) from the gt polygons."""
        return polygon_mask_targets(targets, samples, self.mask_size)

    def mask_loss(self, logits: Tensor, labels: Tensor, mask_targets: Tensor) -> Tensor:
        """``loss_mask`` of the positives' gt-class channels.

        :param logits: ``(P, C, S, S)``. :param labels: ``(P,)`` gt classes.
        :param mask_targets: ``(P, S, S)`` in [0, 1].
        :returns: a scalar; zero (with a gradient path) without positives."""
        if not len(labels):
            return logits.sum() * 0.0
        loss: Tensor = self.loss_mask(class_channel(logits, labels).flatten(1),
                                      mask_targets.flatten(1))
        return loss

    def loss(self, feats: tuple[Tensor, ...], proposals: list[Instances],
             samples: list[DetSample]) -> dict[str, Tensor]:
        """``{"loss_cls", "loss_bbox", "loss_mask", "roi_num_pos"}`` of the sampled RoIs.

        :param feats: pyramid levels ``(B, C_in, H_l, W_l)``.
        :param proposals: per image, ``img_shape`` pixels (no gradient).
        :param samples: with ``gt`` boxes and polygon masks in ``img_shape`` pixels.
        :raises DataError: a sample has no gt masks.
        """
        for sample in samples:
            gt_polygon_masks(sample)
        targets = self.targets(proposals, samples)
        cls, deltas = (output.float() for output in self(feats, targets.rois))
        logits = self.mask_logits(feats, targets.pos_rois).float()
        mask_targets = self.mask_targets(targets, samples)
        with float32_region(cls.device):
            losses = self.loss_by_rois(cls, deltas, targets)
            losses["loss_mask"] = self.mask_loss(logits, targets.pos_labels, mask_targets)
        return losses

    # ---- testing -----------------------------------------------------------------------

    def mask_probs(self, feats: tuple[Tensor, ...], detections: Sequence[Instances]
                   ) -> list[Tensor]:
        """Per image ``(N_i, S, S)`` mask probabilities of the detections' classes on their
        boxes' grids (boxes in ``img_shape`` pixels)."""
        device = feats[0].device
        rois = rois_from_boxes([d.boxes.to(device) for d in detections])
        labels = torch.cat([d.labels.to(device) for d in detections])
        probs = class_channel(self.mask_logits(feats, rois).float(), labels).sigmoid()
        return list(torch.split(probs, [len(d) for d in detections]))

    def predict(self, feats: tuple[Tensor, ...], proposals: list[Instances],
                samples: list[DetSample]) -> list[Instances]:
        """Detections per image: boxes in ``img_shape`` pixels (clipped to it), masks
        ``(N, H_ori, W_ori)`` bool in original image pixels."""
        detections = super().predict(feats, proposals, samples)
        probs = self.mask_probs(feats, detections)
        results = []
        for found, masks, sample in zip(detections, probs, samples, strict=True):
            boxes = sample.boxes_to_original(found.boxes, clip=True)
            direction = sample.flip_direction if sample.flip else None
            pasted = paste_masks(flip_masks(masks, direction), boxes, sample.ori_shape,
                                 self.mask_threshold)
            results.append(Instances(found.boxes, found.labels, found.scores, pasted))
        return results


class MaskRCNN(TwoStageDetector):
    """Backbone -> FPN -> :class:`~plugdet_faster_rcnn.rpn_head.RPNHead` ->
    :class:`MaskRoIHead` (He et al., 2017); everything is
    :class:`~core.models.detectors.TwoStageDetector`'s, the name keeps configs readable."""
