"""Prior generators: feature-map sizes -> anchor boxes or points per level (contract:
:class:`core.contracts.PriorGenerator`)."""

from core.models.priors.anchor_generator import AnchorGenerator
from core.models.priors.point_generator import PointGenerator

__all__ = ["AnchorGenerator", "PointGenerator"]
