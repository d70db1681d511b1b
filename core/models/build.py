"""Build nested components given either as config tables or as ready objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeAlias, TypedDict, TypeVar

from core.contracts import Assigner, BoxCoder, Loss, PostProcess, PriorGenerator, Sampler
from core.plugins import get_registries
from core.registry import component, current_build_path, join_path

T = TypeVar("T")

#: A part as a component takes it: the built object (satisfying the stage's contract ``T``,
#: e.g. ``Buildable[Assigner]``) or the config table (``{"type": ...}``) that builds one.
Buildable: TypeAlias = T | Mapping[str, Any]

# The parameter types of a head's parts: the part or its table, marked with the stage the
# registry builds the table from (``assigner: AssignerPart = {"type": "MaxIoUAssigner"}``).
PriorGeneratorPart: TypeAlias = Annotated[Buildable[PriorGenerator],
                                          component("prior_generator")]
AssignerPart: TypeAlias = Annotated[Buildable[Assigner], component("assigner")]
SamplerPart: TypeAlias = Annotated[Buildable[Sampler], component("sampler")]
CoderPart: TypeAlias = Annotated[Buildable[BoxCoder], component("coder")]
LossPart: TypeAlias = Annotated[Buildable[Loss], component("loss")]
PostProcessPart: TypeAlias = Annotated[Buildable[PostProcess], component("postprocess")]


class DenseHeadParts(TypedDict, total=False):
    """The parts every dense head composes, declared once: a head takes them as
    ``**parts: Unpack[DenseHeadParts]`` and names their defaults in its ``part_defaults``
    table (the registry reads both as keyword parameters)."""

    prior_generator: PriorGeneratorPart
    assigner: AssignerPart
    sampler: SamplerPart
    bbox_coder: CoderPart
    loss_cls: LossPart
    loss_bbox: LossPart
    postprocess: PostProcessPart


def build_part(stage: str, value: Buildable[T], name: str) -> T:
    """Return ``value`` built from its table (``{"type": ...}``) or unchanged if already built.

    Parts given in Python code (tests, notebooks) may be objects; default values in a
    component's signature are tables that the registry builds only when the component itself
    comes from a config, so a component built in code calls this for its defaults.

    :param stage: the stage of the part (e.g. ``"assigner"``); the registry checks what it
        builds against the stage's contract, the ``T`` of ``value``'s annotation.
    :param value: a table or an object (``None`` stays ``None``).
    :param name: the parameter holding the part (e.g. ``"assigner"``); errors name it under
        the config path of the component being built (``model.head.assigner``).
    """
    built: T = get_registries().build_nested(stage, value,
                                             join_path(current_build_path(), name))
    return built
