"""Vis backends: where the Visualizer's scalars, images, configs and histograms go."""

from core.visualization.backends.base import BaseVisBackend
from core.visualization.backends.local import LocalVisBackend

__all__ = ["BaseVisBackend", "LocalVisBackend"]
