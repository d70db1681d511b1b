"""ParamHistogramHook: histograms of parameters and their gradients during training."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.engine.hooks.base import PRIORITIES, Hook
from core.errors import ConfigError, require_at_least

if TYPE_CHECKING:
    from core.engine.runner import Runner


class ParamHistogramHook(Hook):
    """Every ``interval`` iterations send ``params/<name>`` and ``grads/<name>`` histograms.

    Runs in ``after_backward``: gradients of the iteration are present (unscaled under AMP) and
    not yet zeroed. The step is the iteration number counted from 1. Backends without
    histograms (the local one) ignore them; TensorBoard and wandb keep them.

    :param interval: iterations between two snapshots; must be >= 1.
    :param params: send parameter values.
    :param grads: send gradients (of trainable parameters that have one).
    """

    priority = PRIORITIES["LOW"]

    def __init__(self, interval: int = 50, params: bool = True, grads: bool = True) -> None:
        require_at_least("ParamHistogramHook.interval", interval, 1)
        if not (params or grads):
            raise ConfigError("ParamHistogramHook: params and grads are both false")
        self.interval = interval
        self.params = params
        self.grads = grads

    def after_backward(self, runner: Runner, batch_idx: int) -> None:
        step = runner.iter + 1
        if runner.rank != 0 or step % self.interval != 0:
            return
        visualizer = runner.visualizer
        for name, param in runner.model.named_parameters():
            if self.params:
                visualizer.add_histogram(f"params/{name}", param.detach(), step)
            if self.grads and param.grad is not None:
                visualizer.add_histogram(f"grads/{name}", param.grad.detach(), step)
