"""A detector as one tensor function, for export (ONNX).

A detector that defines :data:`EXPORT_METHOD` (``export_outputs``) is exported through it;
this is how detectors outside the dense single-stage pattern (two-stage, instance masks)
export. Its contract:

    ``detector.export_outputs(images)``: ``images (B, 3, H, W)`` normalised float32, each
    taken as a whole image (``img_shape = ori_shape = (H, W)``, scale 1, no flip, no
    padding offset) -> a tuple ``(boxes, scores, labels)`` or ``(boxes, scores, labels,
    masks)``:

    - ``boxes (B, K, 4)`` float32 xyxy input pixels, ``scores (B, K)`` float32,
      ``labels (B, K)`` int64: ``K`` fixed (the detector's detections per image); rows not
      used have score 0 (zero box, label 0), so ``scores > 0`` marks the detections;
    - ``masks (B, K, H, W)`` bool at the input's size, all False on unused rows;
    - traceable by ``torch.onnx.export`` (the TorchScript tracer, opset 17): no Python
      branch on tensor values, sizes through ``torch._shape_as_tensor`` where they must
      follow a dynamic input size;
    - the same detections as ``detector.predict`` of those images (scores within 1e-4,
      boxes within 1e-3 px, masks with IoU >= 0.99 to ``predict``'s bool masks).

Otherwise :class:`ExportableDetector` runs the detector's ``extract_feat`` and ``head(...)``
and then the head's post-processing (sigmoid scores, per-level top ``nms_pre``, box decoding
clipped to the input, class-wise NMS, the best ``max_per_img`` per image) with fixed output
shapes:

    images (B, 3, H, W) normalised float -> boxes (B, K, 4) xyxy input pixels,
                                            scores (B, K), labels (B, K) int64

``K`` is the head's ``max_per_img``; unused rows have score 0 (and a zero box, label 0), so
``scores > 0`` marks the detections. The result equals ``detector.predict`` on an image whose
``img_shape`` is ``(H, W)`` and ``scale_factor`` 1 (up to the order of equal scores).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn
from torchvision.ops import nms

from core.models.heads import flatten_level, flatten_levels

BOX_PARAMS = 4
#: The optional detector method export traces instead of the dense-head path (see above).
EXPORT_METHOD = "export_outputs"


def export_dim(tensor: Tensor, index: int) -> int:
    """Size ``index`` of ``tensor``: an int, while exporting a 0-d graph value used as one
    (so that the size follows a dynamic input)."""
    if torch.onnx.is_in_onnx_export():
        return cast(int, torch._shape_as_tensor(tensor)[index])
    return tensor.shape[index]


def top_candidates(level_scores: list[Tensor], nms_pre: int
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """The ``nms_pre`` best (prior, class) pairs of each level, at fixed sizes (zero-score
    padding keeps ``nms_pre`` on small maps; it never passes a score threshold).

    :param level_scores: per level ``(B, N_l, C)`` probabilities.
    :returns: ``scores (B, M)``, ``labels (B, M)``, ``prior_inds (B, M)`` into the
        concatenated priors, ``M = levels * nms_pre``."""
    scores, labels, prior_inds, offset = [], [], [], 0
    for level in level_scores:
        num_classes = level.shape[-1]
        flat = level.flatten(1)
        num_priors = export_dim(flat, 1) // num_classes
        flat = torch.cat([flat, flat.new_zeros(flat.shape[0], nms_pre)], dim=1)
        top_scores, top_idx = flat.topk(nms_pre, dim=1)
        prior = torch.div(top_idx, num_classes, rounding_mode="floor")
        scores.append(top_scores)
        labels.append(top_idx % num_classes)
        prior_inds.append(torch.clamp(prior, max=num_priors - 1) + offset)
        offset = offset + num_priors
    return torch.cat(scores, 1), torch.cat(labels, 1), torch.cat(prior_inds, 1)


def _nms_by_key(boxes: Tensor, scores: Tensor, keys: Tensor, iou_threshold: float) -> Tensor:
    """``torchvision.ops.batched_nms`` by its coordinate offsets, without its branch for
    empty inputs (exported as an ONNX ``If`` that onnxruntime rejects at fixed sizes; the
    candidates here are never empty).

    :param boxes: ``(N, 4)`` xyxy. :param scores: ``(N,)``. :param keys: ``(N,)`` int groups.
    :returns: kept indices, scores descending.
    """
    offsets = keys.to(boxes) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def nms_top_k(boxes: Tensor, score: Tensor, label: Tensor, num_classes: int,
              score_thr: float, iou_threshold: float, count: int) -> tuple[Tensor, Tensor]:
    """Class-wise NMS per image over all ``(B, M)`` candidates, then the best ``count`` per
    image, at fixed sizes (traceable for export).

    Candidates at or below ``score_thr`` take part in the NMS but are dropped after it: their
    scores are below every kept one, so they suppress nothing kept.

    :param boxes: ``(B, M, 4)`` xyxy. :param score: ``(B, M)``. :param label: ``(B, M)``.
    :returns: ``order (B, count)``: indices into the ``M`` candidates followed by ``count``
        padding rows (a row without a detection points into the padding or to a dropped
        candidate), and their scores ``(B, count)``, 0 on rows without a detection.
    """
    image = torch.arange(score.shape[0], device=score.device)[:, None].expand_as(label)
    keep = _nms_by_key(boxes.reshape(-1, BOX_PARAMS), score.reshape(-1),
                       (image * num_classes + label).reshape(-1), iou_threshold)
    kept = torch.zeros_like(score.reshape(-1)).index_fill(0, keep, 1.0).reshape(score.shape)
    final = torch.where((kept > 0) & (score > score_thr), score, torch.zeros_like(score))
    final = torch.cat([final, final.new_zeros(final.shape[0], count)], dim=1)
    top, order = final.topk(count, dim=1)
    return order, top


class ExportableDetector(nn.Module):
    """Wrap a detector with an ``export_outputs`` method (:data:`EXPORT_METHOD`), or with
    ``extract_feat`` and a dense ``head`` (``forward``, ``num_classes``, ``prior_generator``,
    ``bbox_coder``, ``postprocess`` settings).

    :param detector: the trained detector (put in eval mode).
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        self.own_export = callable(getattr(detector, EXPORT_METHOD, None))
        self.eval()
        if self.own_export:
            return
        head = getattr(detector, "head", None)
        needed = ("num_classes", "prior_generator", "bbox_coder", "postprocess")
        if not hasattr(detector, "extract_feat") or head is None or not all(
                hasattr(head, name) for name in needed):
            raise TypeError(f"{type(detector).__name__}: export needs {EXPORT_METHOD}(), or "
                            f"extract_feat() and a dense head with {', '.join(needed)}")
        self.max_per_img = head.postprocess.max_per_img

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        """:param images: ``(B, 3, H, W)`` normalised images.
        :returns: ``boxes (B, K, 4)``, ``scores (B, K)``, ``labels (B, K)`` and, from an
            ``export_outputs`` with masks, ``masks (B, K, H, W)`` (see module doc)."""
        if self.own_export:
            return tuple(getattr(self.detector, EXPORT_METHOD)(images))
        head = self.detector.head
        nms = head.postprocess
        num_classes = head.num_classes
        cls_scores, bbox_preds = head(self.detector.extract_feat(images))
        score, label, index = top_candidates(
            [head.scores_from_logits(flatten_level(cls, num_classes)) for cls in cls_scores],
            nms.nms_pre)
        priors = torch.cat([
            head.prior_generator.single_level_grid_priors(
                (export_dim(c, 2), export_dim(c, 3)), level, images.device)
            for level, c in enumerate(cls_scores)])
        deltas = flatten_levels(bbox_preds, head.bbox_coder.encode_size)
        deltas = deltas.gather(1, index[:, :, None].expand(-1, -1, deltas.shape[-1]))
        max_shape = torch._shape_as_tensor(images)[2:].reshape(1, 1, 2)
        boxes = head.bbox_coder.decode(priors[index], deltas, max_shape=max_shape)
        return self._select(boxes, score, label, num_classes, nms)

    def _select(self, boxes: Tensor, score: Tensor, label: Tensor, num_classes: int,
                nms: nn.Module) -> tuple[Tensor, Tensor, Tensor]:
        """:func:`nms_top_k` with ``nms``'s settings and :attr:`max_per_img`; the kept
        boxes, scores and labels, zeros on rows without a detection."""
        count = self.max_per_img
        order, top = nms_top_k(boxes, score, label, num_classes, nms.score_thr,
                               nms.iou_threshold, count)
        boxes = torch.cat([boxes, boxes.new_zeros(boxes.shape[0], count, BOX_PARAMS)], dim=1)
        label = torch.cat([label, label.new_zeros(label.shape[0], count)], dim=1)
        valid = top > 0
        out_boxes = boxes.gather(1, order[:, :, None].expand(-1, -1, BOX_PARAMS))
        out_boxes = torch.where(valid[:, :, None], out_boxes, torch.zeros_like(out_boxes))
        out_labels = torch.where(valid, label.gather(1, order), torch.zeros_like(order))
        return out_boxes, top, out_labels
