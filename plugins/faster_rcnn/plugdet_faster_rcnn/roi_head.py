"""The RoI head of Faster R-CNN: proposals -> assign -> sample -> RoIAlign features ->
shared conv/FC box head -> softmax classification and class-specific box regression."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch
from torch import Tensor, nn

from core.api import (
    AssignerPart,
    Buildable,
    CoderPart,
    ConfigError,
    DetSample,
    GTBatch,
    Instances,
    LossPart,
    PostProcessPart,
    SampleResult,
    SamplerPart,
    build_part,
    cls_target_form,
    component,
    float32_region,
)
from plugdet_faster_rcnn.bbox_head import ConvFCBBoxHead
from plugdet_faster_rcnn.roi_extractor import RoIExtractor, rois_from_boxes
from plugdet_faster_rcnn.roi_path import (
    RoITargets,
    proposal_priors,
    roi_detections,
    roi_targets,
)

#: Key of the sampled positive RoIs in the loss dict (logged as ``train/roi_num_pos``).
NUM_POS_KEY = "roi_num_pos"
#: ``nms_pre`` that keeps every (RoI, class) pair above the score threshold.
ALL_PAIRS = 1_000_000

DEFAULT_ROI_EXTRACTOR = {"type": "MultiLevelRoIAlign"}
DEFAULT_ASSIGNER = {
    "type": "MaxIoUAssigner",
    "neg_iou_thr": 0.5,
    "min_pos_iou": 0.5,
    "allow_low_quality_matches": False,
}
DEFAULT_SAMPLER = {"type": "RandomSampler", "add_gt_as_proposals": True}
DEFAULT_CODER = {"type": "DeltaXYWHBBoxCoder", "target_stds": [0.1, 0.1, 0.2, 0.2]}
DEFAULT_LOSS_CLS = {"type": "CrossEntropyLoss"}
DEFAULT_LOSS_BBOX = {"type": "L1Loss"}
DEFAULT_POSTPROCESS = {"type": "MultiClassNMS", "nms_pre": ALL_PAIRS}


class StandardRoIHead(nn.Module):
    """Refines proposals (contract :class:`core.contracts.RoIHead`).

    Training: proposals are assigned to the gt (``assigner``), the gt boxes are added as
    proposals and a fixed number per image sampled (``sampler``); the sampled RoIs' features
    (``roi_extractor``) go through :class:`ConvFCBBoxHead`; softmax cross-entropy with a
    background class over all sampled RoIs, and the box loss on the positives' deltas of
    their gt class (``bbox_coder`` targets), both normalised by the sampled count.
    Test: per-class boxes decoded and clipped, boxes under ``min_bbox_size`` dropped, then
    per-class NMS (``postprocess``).

    :param num_classes: foreground classes C (class C is background).
    :param in_channels: channels of the pyramid levels.
    :param fc_channels: width of the shared FC layers.
    :param min_bbox_size: smallest width and height of a detection (pixels).
    :param num_shared_convs: 3x3 conv + BatchNorm + ReLU layers of the box head before its FC
        layers (4 in torchvision's ``fasterrcnn_resnet50_fpn_v2``).
    :param num_shared_fcs: FC + ReLU layers of the box head (2: Shared2FC).
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
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"num_classes: expected a positive int, got {num_classes}")
        self.num_classes = num_classes
        self.roi_extractor = build_part("roi_extractor", roi_extractor, "roi_extractor")
        self.assigner = build_part("assigner", assigner, "assigner")
        self.sampler = build_part("sampler", sampler, "sampler")
        self.bbox_coder = build_part("coder", bbox_coder, "bbox_coder")
        self.loss_cls = build_part("loss", loss_cls, "loss_cls")
        cls_target_form(self.loss_cls, type(self).__name__, ("labels",))  # softmax over labels
        self.loss_bbox = build_part("loss", loss_bbox, "loss_bbox")
        self.postprocess = build_part("postprocess", postprocess, "postprocess")
        self.min_bbox_size = min_bbox_size
        self.bbox_head = ConvFCBBoxHead(num_classes, in_channels, self.roi_extractor.out_size,
                                        fc_channels, self.bbox_coder.encode_size,
                                        num_shared_convs, num_shared_fcs)

    def forward(self, feats: tuple[Tensor, ...], rois: Tensor) -> tuple[Tensor, Tensor]:
        """:param feats: pyramid levels ``(B, C_in, H_l, W_l)``.
        :param rois: ``(K, 5)`` ``(image index, x1, y1, x2, y2)``.
        :returns: ``(K, C + 1)`` class logits and ``(K, C, encode_size)`` deltas."""
        outputs: tuple[Tensor, Tensor] = self.bbox_head(self.roi_extractor.extract(feats, rois))
        return outputs

    # ---- training ----------------------------------------------------------------------

    def sample(self, proposals: Sequence[Instances], samples: list[DetSample]
               ) -> tuple[SampleResult, GTBatch]:
        """Assign the proposals and sample RoIs as training does.

        :returns: ``(B, M + R)`` sampling (gt boxes first when the sampler adds them; the
            RoIs are ``result.priors.boxes``) and the padded ground truth.
        """
        priors = proposal_priors(proposals, proposals[0].boxes.device if proposals else "cpu")
        gt = GTBatch.from_samples(samples, priors.points.device)
        return self.sampler.sample(self.assigner.assign(priors, gt), priors, gt), gt

    def targets(self, proposals: Sequence[Instances], samples: list[DetSample]) -> RoITargets:
        """Sampled RoIs and what their losses need.

        :param proposals: per image, ``img_shape`` pixels (no gradient).
        :param samples: with ``gt`` in ``img_shape`` pixels.
        """
        return roi_targets(*self.sample(proposals, samples), self.bbox_coder,
                           self.num_classes)

    def loss_by_rois(self, cls: Tensor, deltas: Tensor, targets: RoITargets
                     ) -> dict[str, Tensor]:
        """``{"loss_cls", "loss_bbox", "roi_num_pos"}`` from the sampled RoIs' outputs.

        :param cls: ``(K, C + 1)`` class logits of ``targets.rois``.
        :param deltas: ``(K, C, encode_size)`` class-specific deltas.
        """
        pos_deltas = deltas[targets.is_pos, targets.pos_labels]
        return {
            "loss_cls": self.loss_cls(cls, targets.labels, avg_factor=targets.avg_factor),
            "loss_bbox": self.loss_bbox(pos_deltas, targets.box_targets,
                                        avg_factor=targets.avg_factor),
            NUM_POS_KEY: cls.new_tensor(float(targets.is_pos.sum())),
        }

    def loss(self, feats: tuple[Tensor, ...], proposals: list[Instances],
             samples: list[DetSample]) -> dict[str, Tensor]:
        """``{"loss_cls", "loss_bbox", "roi_num_pos"}`` of the sampled RoIs.

        :param feats: pyramid levels ``(B, C_in, H_l, W_l)``.
        :param proposals: per image, ``img_shape`` pixels (no gradient).
        :param samples: with ``gt`` in ``img_shape`` pixels.
        """
        targets = self.targets(proposals, samples)
        cls, deltas = (output.float() for output in self(feats, targets.rois))
        with float32_region(cls.device):
            return self.loss_by_rois(cls, deltas, targets)

    # ---- testing -----------------------------------------------------------------------

    def predict(self, feats: tuple[Tensor, ...], proposals: list[Instances],
                samples: list[DetSample]) -> list[Instances]:
        """Detections per image in ``img_shape`` pixels (clipped to it)."""
        device = feats[0].device
        cls, deltas = (output.float() for output in
                       self(feats, rois_from_boxes([p.boxes.to(device) for p in proposals])))
        img_shapes = torch.tensor([s.img_shape for s in samples], device=device)
        return roi_detections(proposal_priors(proposals, device), cls, deltas, img_shapes,
                              self.bbox_coder, self.postprocess, self.min_bbox_size)
