"""Box coders: boxes <-> regression targets relative to priors."""

from core.models.coders.delta_xywh import DeltaXYWHBBoxCoder
from core.models.coders.distance_point import DistancePointBBoxCoder
from core.models.coders.log_distance import LogDistancePointCoder

__all__ = ["DeltaXYWHBBoxCoder", "DistancePointBBoxCoder", "LogDistancePointCoder"]
