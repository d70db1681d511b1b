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
stage is an error naming both distributions; a class lacking a member of its stage's contract
(:mod:`core.contracts`) is an error naming the component, its distribution and the member.

A plugin adds a stage of its own through :func:`declare_stages` (as pytest's
``pytest_addhooks`` adds hooks); the list of stages is derived from the specs below plus the
declared ones, never written twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import attrs
import pluggy

from core import contracts

PROJECT_NAME = "plugdet"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

HookFunction = TypeVar("HookFunction", bound=Callable[..., Any])


@attrs.frozen
class StageSpec:
    """A stage: its config-facing name, the hook that fills it and its contract.

    :ivar name: the stage name (``"backbone"``), as ``component("backbone")`` uses it.
    :ivar hook_name: the ``register_<...>`` hook plugins implement.
    :ivar contract: the Protocol a component must satisfy, or None for no check.
    :ivar doc: one line on what the stage's components do.
    """

    name: str
    hook_name: str
    contract: type | None
    doc: str


#: The built-in stages, in pipeline order, filled by the ``@_stage`` specs below.
BUILTIN_STAGES: dict[str, StageSpec] = {}


def _stage(name: str, contract: type | None) -> Callable[[HookFunction], HookFunction]:
    """Mark a hook function as the spec of stage ``name`` with ``contract``."""

    def mark(function: HookFunction) -> HookFunction:
        doc = (function.__doc__ or "").strip().splitlines()[0]
        BUILTIN_STAGES[name] = StageSpec(name, function.__name__, contract, doc)
        return hookspec(function)

    return mark


class Register(Protocol):
    """The callable a ``register_<stage>s`` hook receives."""

    def __call__(self, name: str, factory: Callable[..., Any]) -> None:
        """Record ``factory`` under ``name`` in this hook's stage.

        :param name: the value of ``type`` that selects this component in a config.
        :param factory: class or function building the component from keyword arguments.
        """


class DeclareStage(Protocol):
    """The callable :func:`declare_stages` receives."""

    def __call__(self, name: str, contract: type | None = None, doc: str = "") -> None:
        """Declare stage ``name``; plugins fill it by implementing ``register_<name>s``.

        :param name: stage name (a Python identifier), used in ``component(name)``.
        :param contract: the Protocol its components must satisfy (None: no check).
        :param doc: one line on what its components do (listed by ``python -m core.plugins``).
        """


@hookspec
def declare_stages(declare: DeclareStage) -> None:
    """Declare new stages (e.g. an RoI feature extractor) before any component registers.

    A declared stage ``roi_extractor`` gets the hook ``register_roi_extractors(register)``,
    a registry, a place in ``python -m core.plugins`` and ``component("roi_extractor")``
    parameters, exactly like the built-in stages.

    :param declare: records ``(name, contract, doc)``.
    """


@_stage("backbone", contracts.Backbone)
def register_backbones(register: Register) -> None:
    """Backbone networks: ``images (B, 3, H, W) -> tuple of feature maps``
    (:class:`core.contracts.Backbone`).

    :param register: records ``(name, factory)`` in the ``backbone`` stage.
    """


@_stage("neck", contracts.Neck)
def register_necks(register: Register) -> None:
    """Necks: ``tuple of feature maps -> tuple of feature maps``, e.g. FPN
    (:class:`core.contracts.Neck`).

    :param register: records ``(name, factory)`` in the ``neck`` stage.
    """


@_stage("enhance", contracts.EnhanceLayer)
def register_enhance_layers(register: Register) -> None:
    """Enhance layers inserted into backbones and necks by config:
    ``x (B, C, H, W) -> (B, C', H, W)`` (attention, pyramid pooling, deformable convolution;
    :class:`core.contracts.EnhanceLayer`). Their factories take ``in_channels``, which the
    network sets from the insertion point.

    :param register: records ``(name, factory)`` in the ``enhance`` stage.
    """


@_stage("head", contracts.Head)
def register_heads(register: Register) -> None:
    """Dense, proposal or RoI heads turning features into losses and detections
    (:class:`core.contracts.Head`; dense heads :class:`core.contracts.DenseHead`).

    :param register: records ``(name, factory)`` in the ``head`` stage.
    """


@_stage("detector", contracts.Detector)
def register_detectors(register: Register) -> None:
    """Detectors composing backbone, neck and heads, the config's ``model`` table
    (:class:`core.contracts.Detector`).

    :param register: records ``(name, factory)`` in the ``detector`` stage.
    """


@_stage("prior_generator", contracts.PriorGenerator)
def register_prior_generators(register: Register) -> None:
    """Prior (anchor or point) generators: feature map sizes -> priors per level
    (:class:`core.contracts.PriorGenerator`).

    :param register: records ``(name, factory)`` in the ``prior_generator`` stage.
    """


@_stage("assigner", contracts.Assigner)
def register_assigners(register: Register) -> None:
    """Assigners deciding which priors are positive, negative or ignored
    (:class:`core.contracts.Assigner`).

    :param register: records ``(name, factory)`` in the ``assigner`` stage.
    """


@_stage("sampler", contracts.Sampler)
def register_samplers(register: Register) -> None:
    """Samplers choosing which assigned priors count in the loss
    (:class:`core.contracts.Sampler`).

    :param register: records ``(name, factory)`` in the ``sampler`` stage.
    """


@_stage("coder", contracts.BoxCoder)
def register_coders(register: Register) -> None:
    """Box coders: ``encode(priors, boxes)`` / ``decode(priors, deltas)``
    (:class:`core.contracts.BoxCoder`).

    :param register: records ``(name, factory)`` in the ``coder`` stage.
    """


@_stage("loss", contracts.Loss)
def register_losses(register: Register) -> None:
    """Loss modules called as ``loss(pred, target, weight, avg_factor)``
    (:class:`core.contracts.Loss`).

    :param register: records ``(name, factory)`` in the ``loss`` stage.
    """


@_stage("postprocess", contracts.PostProcess)
def register_postprocesses(register: Register) -> None:
    """Test-time post-processing: dense scores and boxes -> detections, e.g. NMS
    (:class:`core.contracts.PostProcess`).

    :param register: records ``(name, factory)`` in the ``postprocess`` stage.
    """


@_stage("vis_backend", contracts.VisBackend)
def register_vis_backends(register: Register) -> None:
    """Visualization backends: local files, TensorBoard, WandB, ...
    (:class:`core.contracts.VisBackend`).

    :param register: records ``(name, factory)`` in the ``vis_backend`` stage.
    """


@_stage("dataset", contracts.Dataset)
def register_datasets(register: Register) -> None:
    """Datasets yielding ``DetSample`` objects (:class:`core.contracts.Dataset`).

    :param register: records ``(name, factory)`` in the ``dataset`` stage.
    """


@_stage("transform", contracts.Transform)
def register_transforms(register: Register) -> None:
    """Data transforms ``DetSample -> DetSample`` (:class:`core.contracts.Transform`).

    :param register: records ``(name, factory)`` in the ``transform`` stage.
    """


@_stage("metric", contracts.Metric)
def register_metrics(register: Register) -> None:
    """Evaluation metrics: ``process(samples)`` then ``evaluate() -> dict``
    (:class:`core.contracts.Metric`).

    :param register: records ``(name, factory)`` in the ``metric`` stage.
    """


@_stage("hook", contracts.RunnerHook)
def register_hooks(register: Register) -> None:
    """Runner hooks reacting to training, validation and test events
    (:class:`core.contracts.RunnerHook`).

    :param register: records ``(name, factory)`` in the ``hook`` stage.
    """


@_stage("weight_converter", contracts.WeightConverter)
def register_weight_converters(register: Register) -> None:
    """Weight converters: another framework's checkpoints of one architecture -> plugdet's
    keys, for ``load_from`` (:class:`core.contracts.WeightConverter`).

    :param register: records ``(name, factory)`` in the ``weight_converter`` stage.
    """

#: Built-in stage name -> name of the hook that fills it, in pipeline order.
STAGE_HOOKS: dict[str, str] = {name: spec.hook_name for name, spec in BUILTIN_STAGES.items()}
STAGES: tuple[str, ...] = tuple(BUILTIN_STAGES)


def hook_name_for(stage: str) -> str:
    """The registration hook of a declared stage: ``roi_extractor -> register_roi_extractors``."""
    return f"register_{stage}s"


def spec_namespace(spec: StageSpec) -> type:
    """A class holding the hookspec of a declared stage, for ``PluginManager.add_hookspecs``."""

    def register(register: Register) -> None:
        """Components of a plugin-declared stage."""

    register.__name__ = spec.hook_name
    register.__doc__ = f"{spec.doc}\n\n:param register: records ``(name, factory)`` in the " \
                       f"``{spec.name}`` stage."
    return type(f"{spec.name}_spec", (), {spec.hook_name: staticmethod(hookspec(register))})
