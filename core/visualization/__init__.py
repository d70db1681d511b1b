"""Visualization: the Visualizer (drawing + vis backends), feature maps and test-time plots."""

from core.visualization.backends import BaseVisBackend, LocalVisBackend
from core.visualization.featmap import draw_featmap
from core.visualization.visualizer import Visualizer

__all__ = ["BaseVisBackend", "LocalVisBackend", "Visualizer", "draw_featmap"]
