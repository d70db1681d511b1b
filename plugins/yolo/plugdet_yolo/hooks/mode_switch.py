"""YOLOX's last epochs: the training pipeline switched (mosaic off) and model attributes set
(the L1 loss on) at the same epoch."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, Any

from core.api import ConfigError, PipelineSwitchHook, component

if TYPE_CHECKING:
    from core.api import Runner


def _owner(model: Any, path: str) -> tuple[Any, str]:
    """The object holding the last attribute of a dotted ``path`` below ``model``, and its
    name; raises :class:`ConfigError` when any part is missing."""
    *parents, name = path.split(".")
    try:
        owner = functools.reduce(getattr, parents, model)
    except AttributeError as error:
        raise ConfigError(f"ModeSwitchHook.model_attributes: {path!r}: the model has no "
                          f"{error.name!r}") from None
    if not hasattr(owner, name):
        raise ConfigError(f"ModeSwitchHook.model_attributes: {path!r}: "
                          f"{type(owner).__name__} has no attribute {name!r}")
    return owner, name


class ModeSwitchHook(PipelineSwitchHook):
    """:class:`~core.engine.hooks.PipelineSwitchHook` that also sets attributes of the
    detector when it switches, e.g. YOLOX's mosaic off and L1 loss on for the last 15
    epochs::

        [[custom_hooks]]
        type = "ModeSwitchHook"
        close_mosaic_epochs = 15
        switch_pipeline = [{type = "LoadImage"}, ...]
        model_attributes = {"head.use_l1" = true}

    The attributes follow the pipeline's switch: set before every epoch from the switch on,
    also after a resume at or past it, or from a checkpoint written after the switch (the
    attributes are not saved; the switch state is). Paths are dotted below the detector.

    :param switch_pipeline: the transforms of the last epochs.
    :param model_attributes: dotted attribute path -> value set at the switch.
    :param switch_epoch: first (0-based) epoch of the switch.
    :param close_mosaic_epochs: the number of last epochs switched; give this or
        ``switch_epoch``.
    """

    def __init__(
        self,
        switch_pipeline: Annotated[list[Any], component("transform")],
        model_attributes: dict[str, Any],
        switch_epoch: int | None = None,
        close_mosaic_epochs: int | None = None,
    ) -> None:
        super().__init__(switch_pipeline, switch_epoch, close_mosaic_epochs)
        if not model_attributes:
            raise ConfigError("ModeSwitchHook.model_attributes: expected at least one "
                              "attribute (use PipelineSwitchHook for the pipeline alone)")
        self.model_attributes = dict(model_attributes)

    def before_train(self, runner: Runner) -> None:
        """Refuse runs the pipeline switch refuses and attribute paths the model lacks."""
        super().before_train(runner)
        for path in self.model_attributes:
            _owner(runner.model, path)

    def before_train_epoch(self, runner: Runner) -> None:
        """Switch the pipeline once due; set the attributes on every switched epoch."""
        super().before_train_epoch(runner)
        if not self.switched:
            return
        for path, value in self.model_attributes.items():
            owner, name = _owner(runner.model, path)
            if getattr(owner, name) != value:
                setattr(owner, name, value)
                runner.logger.info(f"epoch {runner.epoch + 1}: model.{path} set to {value!r}")
