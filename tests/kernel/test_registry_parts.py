"""A fixed set of parts declared once as a TypedDict (``**parts: Unpack[...]``) and their
defaults in the class's ``part_defaults``: one config key per part."""

from __future__ import annotations

from typing import Annotated, ClassVar, TypedDict, Unpack

import attrs
import pytest

from core.errors import ConfigError, PluginError
from core.models.build import DenseHeadParts
from core.models.heads import DenseHead
from core.plugins import get_registries
from core.registry import component, config_class_for


class Parts(TypedDict, total=False):
    matcher: Annotated[object, component("assigner")]
    size: int


class Composed:
    part_defaults: ClassVar[Parts] = {"matcher": {"type": "MaxIoUAssigner"}}

    def __init__(self, depth: int = 2, **parts: Unpack[Parts]) -> None:
        self.depth, self.parts = depth, parts


def test_the_typed_dict_keys_are_config_keys_with_the_class_defaults():
    fields = {field.name: field for field in attrs.fields(config_class_for(Composed, "C"))}
    assert list(fields) == ["depth", "matcher", "size"]
    assert fields["matcher"].metadata["component"].stage == "assigner"
    assert fields["matcher"].default.factory() == {"type": "MaxIoUAssigner"}
    assert fields["size"].default is attrs.NOTHING  # no default: required
    assert fields["size"].type is int


def test_a_default_for_an_undeclared_part_is_refused():
    class Typo(Composed):
        part_defaults: ClassVar[Parts] = {"matchr": {}}  # type: ignore[typeddict-unknown-key]

    with pytest.raises(PluginError, match=r"part_defaults names \['matchr'\]"):
        config_class_for(Typo, "Typo")


def test_every_dense_head_part_is_a_config_key_with_its_head_default():
    head = get_registries()["head"].get("YOLOv8Head")
    fields = {field.name: field for field in attrs.fields(head.config_class)}
    for key in DenseHeadParts.__annotations__:
        assert key in fields, key
    assert fields["assigner"].default.factory() == {"type": "TaskAlignedAssigner"}
    atss = {f.name: f for f in attrs.fields(get_registries()["head"].get("ATSSHead").config_class)}
    assert atss["assigner"].default.factory() == {"type": "ATSSAssigner"}
    assert atss["loss_cls"].default.factory() == {"type": "FocalLoss"}  # RetinaHead's


def test_a_dense_head_without_a_part_or_its_default_names_what_is_missing():
    class Bare(DenseHead):
        pass

    with pytest.raises(ConfigError,
                       match="Bare: no prior_generator, sampler, bbox_coder, loss_cls"):
        Bare(3, assigner={"type": "MaxIoUAssigner"})
