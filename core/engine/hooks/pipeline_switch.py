"""Replacing the training pipeline for the last epochs (YOLO's "close mosaic")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from core.data.loader import restart_workers
from core.data.transforms.base import Pipeline
from core.engine.hooks.base import PRIORITIES, Hook
from core.errors import ConfigError
from core.registry import component

if TYPE_CHECKING:
    from core.engine.runner import Runner

#: checkpoint key of the hook's state.
STATE_KEY = "pipeline_switch"


class PipelineSwitchHook(Hook):
    """From epoch ``switch_epoch`` on, the training dataset uses ``switch_pipeline``.

    Config (YOLO: mosaic off for the last 10 epochs)::

        [[custom_hooks]]
        type = "PipelineSwitchHook"
        close_mosaic_epochs = 10          # or switch_epoch = 290 (0-based epoch index)
        switch_pipeline = [{type = "LoadImage"}, ...]

    The switch happens before the epoch's batches are drawn whenever ``runner.epoch >=
    switch_epoch``, so a run resumed at or past that epoch (also mid-epoch) switches too;
    checkpoints record under ``pipeline_switch`` whether the switch was made, and a run
    resumed from a switched checkpoint stays switched. The dataset must hold its transforms
    in ``dataset.pipeline`` (every :class:`~core.data.datasets.base.DetDataset` does); the
    loader's worker processes are restarted so that they see the new pipeline. Epoch-based
    runs only.

    :param switch_pipeline: the transforms of the last epochs.
    :param switch_epoch: first (0-based) epoch of the new pipeline.
    :param close_mosaic_epochs: the number of last epochs with the new pipeline
        (``switch_epoch = max_epochs - close_mosaic_epochs``); give this or ``switch_epoch``.
    """

    priority = PRIORITIES["NORMAL"]

    def __init__(
        self,
        switch_pipeline: Annotated[list[Any], component("transform")],
        switch_epoch: int | None = None,
        close_mosaic_epochs: int | None = None,
    ) -> None:
        if (switch_epoch is None) == (close_mosaic_epochs is None):
            raise ConfigError("PipelineSwitchHook: give exactly one of switch_epoch and "
                              "close_mosaic_epochs")
        for name, value in (("switch_epoch", switch_epoch),
                            ("close_mosaic_epochs", close_mosaic_epochs)):
            if value is not None and value < 0:
                raise ConfigError(f"PipelineSwitchHook.{name}: expected >= 0, got {value}")
        self.pipeline = Pipeline(switch_pipeline)
        self.switch_epoch = switch_epoch
        self.close_mosaic_epochs = close_mosaic_epochs
        self.switched = False
        self._resumed_switched = False

    def first_epoch(self, runner: Runner) -> int:
        """The 0-based epoch from which the new pipeline is used."""
        if self.switch_epoch is not None:
            return self.switch_epoch
        assert self.close_mosaic_epochs is not None
        return max(runner.max_epochs - self.close_mosaic_epochs, 0)

    def before_train(self, runner: Runner) -> None:
        """Refuse iteration-based runs and datasets without a pipeline."""
        if not runner.by_epoch:
            raise ConfigError("PipelineSwitchHook: needs an epoch-based run (train.by_epoch)")
        dataset = runner.train_loader.dataset if runner.train_loader is not None else None
        if not isinstance(getattr(dataset, "pipeline", None), Pipeline):
            raise ConfigError(f"PipelineSwitchHook: the training dataset "
                              f"{type(dataset).__name__} has no pipeline to replace")

    def before_train_epoch(self, runner: Runner) -> None:
        """Switch once the epoch about to run is at or past the switch epoch."""
        if self.switched or not (runner.epoch >= self.first_epoch(runner)
                                 or self._resumed_switched):
            return
        loader = runner.train_loader
        assert loader is not None
        loader.dataset.pipeline = self.pipeline
        restart_workers(loader)
        self.switched = True
        runner.logger.info(f"epoch {runner.epoch + 1}: training pipeline switched to "
                           f"{self.pipeline!r}")

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict[str, Any]) -> None:
        """Record whether the switch was made."""
        checkpoint[STATE_KEY] = {"switched": self.switched,
                                 "switch_epoch": self.first_epoch(runner)}

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict[str, Any]) -> None:
        """A checkpoint written after the switch keeps the new pipeline."""
        state = checkpoint.get(STATE_KEY) or {}
        self._resumed_switched = bool(state.get("switched", False))
