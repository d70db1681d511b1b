"""YOLOv8-seg head: the YOLOv8 head plus per-prior mask coefficients and prototype masks
computed from the finest level; a mask is the sigmoid of coefficients . prototypes."""

from __future__ import annotations

from typing import Unpack, cast

import torch
from torch import Tensor, nn

from core.api import (
    ConfigError,
    DenseHeadParts,
    DenseLossInputs,
    DetSample,
    Instances,
    LossPart,
    MultiClassNMS,
    PointGenerator,
    export_dim,
    flatten_level,
    flatten_levels,
    nms_top_k,
    top_candidates,
)
from plugdet_yolo.layers import make_divisible
from plugdet_yolo.proto import Proto, mask_loss, paste_masks
from plugdet_yolo.seg_export import (
    BOX_PARAMS,
    level_points,
    masks_at_input,
)
from plugdet_yolo.yolov8_head import DEFAULT_LOSS_DFL, YOLOv8Head

#: The mask loss's gain: ultralytics weighs it with the box gain.
MASK_LOSS_WEIGHT = 7.5


class YOLOv8SegHead(YOLOv8Head):
    """:class:`YOLOv8Head` (its branches, task-aligned assignment and losses unchanged) with
    a third branch per level (two 3x3 conv-BN-SiLU of width ``max(C_0 / 4, M)``, a 1x1 conv
    to ``M`` coefficients) and :class:`~plugdet_yolo.proto.Proto` on the finest level
    (``M`` prototypes at stride 4).

    ``loss_mask``: for each positive prior, the per-pixel BCE of its coefficients .
    prototypes against its gt's mask (the polygons rasterised at prototype size), inside the
    gt box and normalised by the box's area (:func:`~plugdet_yolo.proto.mask_loss`), summed
    over the positives, divided by their number and multiplied by ``loss_mask_weight`` (and
    by the number of images with ``loss_scale_by_batch``). At test time the coefficients of
    each detection kept by NMS give its mask in the original image
    (:func:`~plugdet_yolo.proto.paste_masks`).

    :param num_masks: M prototypes and coefficients per prior.
    :param proto_channels: width of the prototype branch before widening.
    :param loss_mask_weight: gain of the mask loss.

    The other parameters are :class:`YOLOv8Head`'s.
    """

    def __init__(
        self,
        num_classes: int = 80,
        in_channels: tuple[int, ...] = (256, 512, 1024),
        widen_factor: float = 1.0,
        reg_max: int = 16,
        loss_dfl: LossPart = DEFAULT_LOSS_DFL,
        loss_scale_by_batch: bool = True,
        cls_feat_channels: int | None = None,
        num_masks: int = 32,
        proto_channels: int = 256,
        loss_mask_weight: float = MASK_LOSS_WEIGHT,
        **parts: Unpack[DenseHeadParts],
    ) -> None:
        super().__init__(num_classes, in_channels, widen_factor, reg_max, loss_dfl,
                         loss_scale_by_batch, cls_feat_channels, **parts)
        if num_masks < 1 or proto_channels < 1:
            raise ConfigError(f"num_masks/proto_channels: expected positive ints, got "
                              f"{num_masks}, {proto_channels}")
        if not isinstance(self.postprocess, MultiClassNMS):
            raise ConfigError(f"postprocess: {type(self).__name__} needs a MultiClassNMS (it "
                              "tells which candidates it keeps), got "
                              f"{type(self.postprocess).__name__}")
        channels = [make_divisible(c, widen_factor) for c in in_channels]
        width = max(channels[0] // 4, num_masks)
        self.num_masks = num_masks
        self.loss_mask_weight = loss_mask_weight
        self.mask_branches = nn.ModuleList(self._branch(c, width, num_masks) for c in channels)
        self.proto = Proto(channels[0], make_divisible(proto_channels, widen_factor), num_masks)

    def forward(  # type: ignore[override]  # two outputs more than YOLOv8Head's
        self, feats: tuple[Tensor, ...]
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
        """:param feats: per level ``(B, C_l, H_l, W_l)``.
        :returns: :meth:`YOLOv8Head.forward`'s three outputs, per level the mask
            coefficients ``(B, M, H_l, W_l)``, and ``[protos]`` with the ``(B, M, 2 H_0,
            2 W_0)`` prototypes."""
        cls_scores, distances, dist_logits = super().forward(feats)
        coefs = [branch(x) for branch, x in zip(self.mask_branches, feats, strict=True)]
        return cls_scores, distances, dist_logits, coefs, [self.proto(feats[0])]

    @property
    def mask_nms(self) -> MultiClassNMS:
        """The post-process (checked to be a :class:`~core.api.MultiClassNMS` at build)."""
        return cast(MultiClassNMS, self.postprocess)

    def input_shape(self, cls_scores: list[Tensor]) -> tuple[int, int]:
        """``(H, W)`` of the network input (the padded batch) the outputs come from."""
        stride = int(self.prior_generator.strides[0])
        return int(cls_scores[0].shape[-2]) * stride, int(cls_scores[0].shape[-1]) * stride

    # ---- training ----------------------------------------------------------------------

    def loss(self, feats: tuple[Tensor, ...], samples: list[DetSample]) -> dict[str, Tensor]:
        """:meth:`YOLOv8Head.loss_by_feat`'s losses and scalars plus ``loss_mask``.

        :param feats: neck outputs, per level ``(B, C_in, H_l, W_l)``.
        :param samples: with ``gt`` (boxes and polygon masks) in ``img_shape`` pixels."""
        with self.float32_outputs(feats) as outputs:
            cls_scores, distances, bin_logits, coefs, (protos,) = outputs
            inputs = self.loss_inputs(cls_scores, distances, samples, bin_logits)
            losses = self.detection_losses(inputs, bin_logits, len(samples))
            loss_mask = self.mask_loss_by_feat(inputs, coefs, protos, samples,
                                               self.input_shape(cls_scores))
        scale = float(len(samples)) if self.loss_scale_by_batch else 1.0
        return {"loss_mask": loss_mask * scale, **losses}

    def mask_loss_by_feat(self, inputs: DenseLossInputs, coef_levels: list[Tensor],
                          protos: Tensor, samples: list[DetSample],
                          input_shape: tuple[int, int]) -> Tensor:
        """``loss_mask_weight`` times the positives' mean mask loss (unscaled by the batch).

        :param coef_levels: per level ``(B, M, H_l, W_l)`` coefficients.
        :param protos: ``(B, M, h, w)`` prototypes.
        :param input_shape: ``(H, W)`` of the network input."""
        targets = inputs.targets
        coefs = inputs.at_positives(flatten_levels(coef_levels, self.num_masks))  # (P, M)
        if not targets.num_pos:
            return (protos * 0).sum() + sum((c * 0).sum() for c in coef_levels)
        assign_result = targets.sampling.assign_result
        pos_gt = assign_result.gt_inds[targets.pos_image, targets.pos_prior] - 1
        height, width = int(protos.shape[-2]), int(protos.shape[-1])
        total = protos.new_zeros(())
        for image, sample in enumerate(samples):
            selected = targets.pos_image == image
            if not bool(selected.any()):
                continue
            gt_index, row = torch.unique(pos_gt[selected], return_inverse=True)
            bitmaps = self.gt_bitmaps(sample, gt_index, (height, width), input_shape)
            total = total + mask_loss(coefs[selected], protos[image], bitmaps[row],
                                      targets.pos_gt_boxes[selected], input_shape)
        return total / targets.num_pos * self.loss_mask_weight

    @staticmethod
    def gt_bitmaps(sample: DetSample, gt_index: Tensor, size: tuple[int, int],
                   input_shape: tuple[int, int]) -> Tensor:
        """``(K, h, w)`` float {0, 1}: the polygon masks of the ``(K,)`` gt instances
        ``gt_index`` rasterised at the prototypes' ``size = (h, w)`` (which spans the network
        input ``input_shape``), on ``gt_index``'s device."""
        masks = sample.gt.masks
        if masks is None or isinstance(masks, Tensor):
            raise ValueError(f"sample img_id={sample.img_id} ({sample.img_path}): a mask head "
                             "needs polygon masks in the ground truth (a dataset with masks)")
        height, width = size
        in_h, in_w = input_shape
        rescaled = masks[gt_index].rescale(width / in_w, height / in_h, (height, width))
        return rescaled.to_tensor().to(device=gt_index.device, dtype=torch.float32)

    # ---- testing -----------------------------------------------------------------------

    def predict(self, feats: tuple[Tensor, ...], samples: list[DetSample]) -> list[Instances]:
        """Detections per image in ``img_shape`` pixels with ``(N, H_ori, W_ori)`` bool masks
        in the original image."""
        with self.float32_outputs(feats) as outputs:
            cls_scores, distances, _, coef_levels, (protos,) = outputs
            boxes, candidates = self.decoded_candidates(cls_scores, distances, samples)
            results, kept = self.mask_nms.nms_with_indices(boxes, candidates)
            coefs = flatten_levels(coef_levels, self.num_masks)
            input_shape = self.input_shape(cls_scores)
            num_masks, height, width = protos.shape[1:]
            out = []
            for image, (result, rows) in enumerate(zip(results, kept, strict=True)):
                priors = candidates.prior_inds[image, rows]
                logits = (coefs[image, priors] @ protos[image].reshape(num_masks, -1)).view(
                    -1, height, width)
                masks = paste_masks(logits, result.boxes, samples[image], input_shape)
                out.append(Instances(result.boxes, result.labels, result.scores, masks))
            return out

    # ---- export ------------------------------------------------------------------------

    def export_outputs(self, feats: tuple[Tensor, ...], images: Tensor
                       ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """:meth:`predict` of whole images as one traceable tensor function (ONNX export,
        :mod:`plugdet_yolo.seg_export`).

        :param feats: neck outputs of ``images``, per level ``(B, C_in, H_l, W_l)``.
        :param images: ``(B, 3, H, W)`` network input, each a whole image.
        :returns: ``boxes (B, K, 4)`` xyxy input pixels, ``scores (B, K)``, ``labels (B, K)``
            int64 and ``masks (B, K, H, W)`` bool, ``K = max_per_img``; rows without a
            detection have score 0, a zero box, label 0 and an empty mask."""
        nms = self.mask_nms
        generator = self.prior_generator
        if not isinstance(generator, PointGenerator):
            raise ConfigError(f"export: {type(self).__name__} exports with a PointGenerator, "
                              f"got {type(generator).__name__}")
        cls_scores, distances, _, coef_levels, (protos,) = self(feats)
        level_scores = [self.scores_from_logits(flatten_level(c, self.num_classes))
                        for c in cls_scores]
        scores, labels, index = top_candidates(level_scores, nms.nms_pre)
        points, strides = level_points(cls_scores, list(self.prior_generator.strides),
                                       generator.offset)
        reg = flatten_levels(distances, self.bbox_coder.encode_size)
        values = reg.gather(1, index[:, :, None].expand(-1, -1, reg.shape[-1]))
        max_shape = torch._shape_as_tensor(images)[2:].reshape(1, 1, 2)
        boxes = self.bbox_coder.decode(points[index], values, max_shape=max_shape,
                                       strides=strides[index])
        order, top = nms_top_k(boxes, scores, labels, self.num_classes, nms.score_thr,
                               nms.iou_threshold, nms.max_per_img)
        order = torch.clamp(order, max=export_dim(scores, 1) - 1)  # padding rows: any candidate
        valid = top > 0
        boxes = boxes.gather(1, order[:, :, None].expand(-1, -1, BOX_PARAMS))
        boxes = torch.where(valid[:, :, None], boxes, torch.zeros_like(boxes))
        labels = torch.where(valid, labels.gather(1, order), torch.zeros_like(order))
        coefs = flatten_levels(coef_levels, self.num_masks)
        coefs = coefs.gather(1, index.gather(1, order)[:, :, None].expand(
            -1, -1, self.num_masks))
        logits = torch.einsum("bkm,bmhw->bkhw", coefs, protos)
        stride = int(self.prior_generator.strides[0])
        logit_shape = (export_dim(cls_scores[0], 2) * stride, export_dim(cls_scores[0], 3) * stride)
        return boxes, top, labels, masks_at_input(logits, boxes, valid, images, logit_shape)
