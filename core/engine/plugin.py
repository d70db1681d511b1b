"""Built-in plugin registering the engine's runner hooks (stage ``hook``)."""

from core import impl
from core.engine.hooks import (
    CheckpointHook,
    EarlyStoppingHook,
    EMAHook,
    EvaluationHook,
    LoggerHook,
    ParamSchedulerHook,
    PipelineSwitchHook,
)
from core.hookspecs import Register


@impl
def register_hooks(register: Register) -> None:
    """Logger, checkpoint, param scheduler, evaluation, EMA, early stopping and pipeline
    switch hooks."""
    register("LoggerHook", LoggerHook)
    register("CheckpointHook", CheckpointHook)
    register("ParamSchedulerHook", ParamSchedulerHook)
    register("EvaluationHook", EvaluationHook)
    register("EMAHook", EMAHook)
    register("EarlyStoppingHook", EarlyStoppingHook)
    register("PipelineSwitchHook", PipelineSwitchHook)
