"""Built-in plugin: the local vis backend and the visualization runner hooks."""

from __future__ import annotations

from core import impl
from core.hookspecs import Register
from core.visualization.backends.local import LocalVisBackend
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
def register_vis_backends(register: Register) -> None:
    register("LocalVisBackend", LocalVisBackend)


@impl
def register_hooks(register: Register) -> None:
    register("DetVisualizationHook", DetVisualizationHook)
    register("ParamHistogramHook", ParamHistogramHook)
    register("PositiveSamplesHook", PositiveSamplesHook)
    register("RunInfoHook", RunInfoHook)
    register("TestPlotsHook", TestPlotsHook)
    register("ValPlotsHook", ValPlotsHook)
    register("CurvesHook", CurvesHook)
    register("RunSummaryHook", RunSummaryHook)
