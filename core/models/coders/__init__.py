"""Box coders: boxes <-> regression targets relative to priors."""

from core.models.coders.delta_xywh import DeltaXYWHBBoxCoder
from core.models.coders.distance_point import DistancePointBBoxCoder

__all__ = ["DeltaXYWHBBoxCoder", "DistancePointBBoxCoder"]
