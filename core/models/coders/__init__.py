"""Box coders: boxes <-> regression targets relative to priors."""

from core.models.coders.delta_xywh import DeltaXYWHBBoxCoder

__all__ = ["DeltaXYWHBBoxCoder"]
