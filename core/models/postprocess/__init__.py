"""Post-processing: dense scores and boxes -> final detections per image."""

from core.models.postprocess.multiclass_nms import Candidates, MultiClassNMS

__all__ = ["Candidates", "MultiClassNMS"]
