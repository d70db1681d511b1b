"""Runner hooks: the :class:`Hook` base and the built-in hooks."""

from core.engine.hooks.base import PRIORITIES, Hook
from core.engine.hooks.checkpoint import CheckpointHook
from core.engine.hooks.early_stopping import EarlyStoppingHook
from core.engine.hooks.ema import EMAHook
from core.engine.hooks.evaluation import EvaluationHook
from core.engine.hooks.logger import LoggerHook
from core.engine.hooks.param_scheduler import ParamSchedulerHook
from core.engine.hooks.pipeline_switch import PipelineSwitchHook

__all__ = [
    "PRIORITIES",
    "CheckpointHook",
    "EMAHook",
    "EarlyStoppingHook",
    "EvaluationHook",
    "Hook",
    "LoggerHook",
    "ParamSchedulerHook",
    "PipelineSwitchHook",
]
