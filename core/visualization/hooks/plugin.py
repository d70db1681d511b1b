"""Built-in plugin: the runner hooks that draw (predictions, curves, PR curves, positive
samples, histograms, the run's environment and summary)."""

from __future__ import annotations

from core import impl
from core.hookspecs import Register
from core.registry import register_each
from core.visualization.hooks import (
    CurvesHook,
    DetVisualizationHook,
    ParamHistogramHook,
    PositiveSamplesHook,
    RunInfoHook,
    RunSummaryHook,
    TestPlotsHook,
    ValPlotsHook,
)


@impl
def register_hooks(register: Register) -> None:
    register_each(register, DetVisualizationHook, ParamHistogramHook, PositiveSamplesHook,
                  RunInfoHook, TestPlotsHook, ValPlotsHook, CurvesHook, RunSummaryHook)
