"""Prior generators: feature-map sizes -> anchor boxes."""

from core.models.priors.anchor_generator import AnchorGenerator

__all__ = ["AnchorGenerator"]
