"""Post-processing: dense scores and boxes -> final detections per image."""

from core.models.postprocess.multiclass_nms import Candidates, MultiClassNMS
from core.models.postprocess.rescale import rescale_to_original

__all__ = ["Candidates", "MultiClassNMS", "rescale_to_original"]
