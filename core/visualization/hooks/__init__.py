"""Runner hooks of the visualization plugin (stage ``hook``)."""

from core.visualization.hooks.curves import CurvesHook
from core.visualization.hooks.det_visualization import DetVisualizationHook
from core.visualization.hooks.param_histogram import ParamHistogramHook
from core.visualization.hooks.positive_samples import PositiveSamplesHook
from core.visualization.hooks.run_info import RunInfoHook
from core.visualization.hooks.run_summary import RunSummaryHook
from core.visualization.hooks.test_plots import TestPlotsHook, ValPlotsHook

__all__ = ["CurvesHook", "DetVisualizationHook", "ParamHistogramHook", "PositiveSamplesHook",
           "RunInfoHook", "RunSummaryHook", "TestPlotsHook", "ValPlotsHook"]
