"""Hook specifications: one ``register_<stage>s`` hook per pipeline stage.

Every hook has the same shape. At start-up the plugin manager calls each plugin's
implementation once (all implementations are called; return values are ignored) with a
``register`` callable bound to that stage's registry and to the plugin's distribution::

    @impl
    def register_necks(register: Register) -> None:
        register("FPN", FPN)

``register(name, factory)`` records a component. ``factory`` is a class or function whose
keyword parameters, with their type hints, define the component's config table; if it is an
attrs class it is used as its own config class. Two plugins registering the same name in one
stage is an error naming both distributions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pluggy

PROJECT_NAME = "plugdet"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class Register(Protocol):
    """The callable a ``register_<stage>s`` hook receives."""

    def __call__(self, name: str, factory: Callable[..., Any]) -> None:
        """Record ``factory`` under ``name`` in this hook's stage.

        :param name: the value of ``type`` that selects this component in a config.
        :param factory: class or function building the component from keyword arguments.
        """


@hookspec
def register_backbones(register: Register) -> None:
    """Register backbone networks: ``images (B, 3, H, W) -> tuple of feature maps``.

    :param register: records ``(name, factory)`` in the ``backbone`` stage.
    """


@hookspec
def register_necks(register: Register) -> None:
    """Register necks: ``tuple of feature maps -> tuple of feature maps`` (e.g. FPN).

    :param register: records ``(name, factory)`` in the ``neck`` stage.
    """


@hookspec
def register_enhance_layers(register: Register) -> None:
    """Register enhance layers inserted into backbones and necks by config:
    ``x (B, C, H, W) -> (B, C', H, W)`` (attention, pyramid pooling, deformable convolution).
    Their factories take ``in_channels``, which the network sets from the insertion point.

    :param register: records ``(name, factory)`` in the ``enhance`` stage.
    """


@hookspec
def register_heads(register: Register) -> None:
    """Register dense or RoI heads that turn features into losses and detections.

    :param register: records ``(name, factory)`` in the ``head`` stage.
    """


@hookspec
def register_detectors(register: Register) -> None:
    """Register detectors composing backbone, neck and head (the config's ``model`` table).

    :param register: records ``(name, factory)`` in the ``detector`` stage.
    """


@hookspec
def register_prior_generators(register: Register) -> None:
    """Register prior (anchor or point) generators: feature map sizes -> priors per level.

    :param register: records ``(name, factory)`` in the ``prior_generator`` stage.
    """


@hookspec
def register_assigners(register: Register) -> None:
    """Register assigners deciding which priors are positive, negative or ignored.

    :param register: records ``(name, factory)`` in the ``assigner`` stage.
    """


@hookspec
def register_samplers(register: Register) -> None:
    """Register samplers choosing which assigned priors count in the loss.

    :param register: records ``(name, factory)`` in the ``sampler`` stage.
    """


@hookspec
def register_coders(register: Register) -> None:
    """Register box coders (``encode(priors, gt)`` / ``decode(priors, deltas)``).

    :param register: records ``(name, factory)`` in the ``coder`` stage.
    """


@hookspec
def register_losses(register: Register) -> None:
    """Register loss modules (classification, regression, IoU losses).

    :param register: records ``(name, factory)`` in the ``loss`` stage.
    """


@hookspec
def register_vis_backends(register: Register) -> None:
    """Register visualization backends (local files, TensorBoard, WandB, ...).

    :param register: records ``(name, factory)`` in the ``vis_backend`` stage.
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets yielding ``DetSample`` objects.

    :param register: records ``(name, factory)`` in the ``dataset`` stage.
    """


@hookspec
def register_transforms(register: Register) -> None:
    """Register data transforms (``DetSample -> DetSample``).

    :param register: records ``(name, factory)`` in the ``transform`` stage.
    """


@hookspec
def register_metrics(register: Register) -> None:
    """Register evaluation metrics (``process(samples)`` then ``evaluate() -> dict``).

    :param register: records ``(name, factory)`` in the ``metric`` stage.
    """


@hookspec
def register_hooks(register: Register) -> None:
    """Register runner hooks reacting to training, validation and test events.

    :param register: records ``(name, factory)`` in the ``hook`` stage.
    """


#: Stage name -> name of the hook that fills it, in pipeline order.
STAGE_HOOKS: dict[str, str] = {
    "backbone": "register_backbones",
    "neck": "register_necks",
    "enhance": "register_enhance_layers",
    "head": "register_heads",
    "detector": "register_detectors",
    "prior_generator": "register_prior_generators",
    "assigner": "register_assigners",
    "sampler": "register_samplers",
    "coder": "register_coders",
    "loss": "register_losses",
    "vis_backend": "register_vis_backends",
    "dataset": "register_datasets",
    "transform": "register_transforms",
    "metric": "register_metrics",
    "hook": "register_hooks",
}
STAGES: tuple[str, ...] = tuple(STAGE_HOOKS)
