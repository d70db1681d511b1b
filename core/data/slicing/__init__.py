"""Small objects on large images: tile windows, sliced inference and the merging of the
tiles' detections (SAHI's geometry and post-processes); see ``docs/slicing.md``."""

from core.data.slicing.inference import (
    image_windows,
    load_original,
    predict_sliced,
    predict_windows,
    test_prepare,
    window_sample,
)
from core.data.slicing.merge import greedy_nmm_groups, merge_detections, nms_keep
from core.data.slicing.settings import SliceSettings
from core.data.slicing.windows import axis_starts, crop_instances, slice_windows, window_to_image

__all__ = [
    "SliceSettings",
    "axis_starts",
    "crop_instances",
    "greedy_nmm_groups",
    "image_windows",
    "load_original",
    "merge_detections",
    "nms_keep",
    "predict_sliced",
    "predict_windows",
    "slice_windows",
    "test_prepare",
    "window_sample",
    "window_to_image",
]
