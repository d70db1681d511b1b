"""Runner hooks of the visualization plugin (stage ``hook``)."""

from core.visualization.hooks.det_visualization import DetVisualizationHook
from core.visualization.hooks.param_histogram import ParamHistogramHook
from core.visualization.hooks.run_info import RunInfoHook
from core.visualization.hooks.test_plots import TestPlotsHook

__all__ = ["DetVisualizationHook", "ParamHistogramHook", "RunInfoHook", "TestPlotsHook"]
