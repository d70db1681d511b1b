"""The YOLO detector: core's single-stage detector with a YOLO backbone, neck and head."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from core.api import SingleStageDetector


class YOLODetector(SingleStageDetector):
    """CSPDarknet -> PAFPN -> YOLO head; everything is
    :class:`~core.models.detectors.SingleStageDetector`'s, the name keeps configs readable."""

    @property
    def export_outputs(self) -> Callable[[Tensor], tuple[Tensor, ...]] | None:
        """The detector as one tensor function for ONNX export, ``images (B, 3, H, W) ->
        (boxes, scores, labels, masks)``, when its head defines ``export_outputs(feats,
        images)`` (YOLOv8-seg); None otherwise (export then takes the dense-head path)."""
        head_export = getattr(self.head, "export_outputs", None)
        if head_export is None:
            return None
        return lambda images: head_export(self.extract_feat(images), images)
