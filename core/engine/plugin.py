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
from core.registry import register_each


@impl
def register_hooks(register: Register) -> None:
    """Logger, checkpoint, param scheduler, evaluation, EMA, early stopping and pipeline
    switch hooks."""
    register_each(register, LoggerHook, CheckpointHook, ParamSchedulerHook, EvaluationHook,
                  EMAHook, EarlyStoppingHook, PipelineSwitchHook)
