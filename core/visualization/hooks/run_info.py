"""RunInfoHook: environment info to every vis backend at start; optional model watching."""

from __future__ import annotations

import platform
import sys
from typing import TYPE_CHECKING

import torch
import torchvision

import core
from core.engine.hooks.base import PRIORITIES, Hook

if TYPE_CHECKING:
    from core.engine.runner import Runner

ENV_TEXT_NAME = "env"


def environment_info() -> dict[str, str]:
    """Versions and devices of this process, and the loaded plugins with their components."""
    from core.plugins import get_plugin_manager

    manager = get_plugin_manager()
    cuda = torch.cuda.is_available()
    info = {
        "plugdet": core.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda available": str(cuda),
        "cuda": str(torch.version.cuda),
        "cudnn": str(torch.backends.cudnn.version()) if cuda else "None",
        "gpus": ", ".join(
            torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
        ) or "None",
        "plugins": ", ".join(
            f"{info.distribution} {info.version} [{info.name}]" for info in manager.plugins
        ),
    }
    if manager.failures:
        info["plugin load errors"] = ", ".join(
            f"{failure.distribution} [{failure.name}]: {failure.error}"
            for failure in manager.failures
        )
    return info


def format_environment(info: dict[str, str]) -> str:
    """One ``key: value`` line per entry."""
    return "\n".join(f"{key}: {value}" for key, value in info.items())


class RunInfoHook(Hook):
    """At the start of a run, send the environment (versions, devices, plugins) as text.

    The merged config itself reaches every backend when the Runner is built
    (``Visualizer.add_config``); this hook adds what the config cannot say: which torch, CUDA
    and plugin versions ran it. With ``watch_model`` it also hands the model to backends with
    native tracking (wandb ``watch``, configured on the backend).

    :param watch_model: call ``Visualizer.watch_model(runner.model)`` before training.
    """

    priority = PRIORITIES["VERY_HIGH"]

    def __init__(self, watch_model: bool = True) -> None:
        self.watch_model = watch_model

    def before_run(self, runner: Runner) -> None:
        if runner.rank != 0:
            return
        text = format_environment(environment_info())
        runner.visualizer.add_text(ENV_TEXT_NAME, text, step=0)
        runner.logger.info("environment:\n%s", text)

    def before_train(self, runner: Runner) -> None:
        if runner.rank == 0 and self.watch_model:
            runner.visualizer.watch_model(runner.model)
