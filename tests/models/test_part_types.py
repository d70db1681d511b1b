"""Every nested part of a model component is annotated with its stage's contract, so that a
type checker sees what a head or a detector may use of it."""

from __future__ import annotations

import typing
from typing import Any

import attrs

from core import contracts
from core.plugins import get_registries

#: Stages whose components are model code.
MODEL_STAGES = ("backbone", "neck", "enhance", "head", "detector", "prior_generator",
                "assigner", "sampler", "coder", "loss", "postprocess", "roi_extractor")
#: A head part may name a refinement of the stage's contract ``Head``.
HEAD_PROTOCOLS = {contracts.Head, contracts.DenseHead, contracts.ProposalHead,
                  contracts.RoIHead}


def _protocols_in(hint: Any) -> set[type]:
    """The Protocol classes anywhere in ``hint`` (through Annotated, unions, generics)."""
    found = set()
    if isinstance(hint, type) and getattr(hint, "_is_protocol", False):
        found.add(hint)
    for arg in typing.get_args(hint):
        found |= _protocols_in(arg)
    return found


def _model_parts() -> list[tuple[str, str, Any]]:
    """``(component.parameter, part stage, hint)`` of every nested part of a model component."""
    regs = get_registries()
    parts = []
    for stage in MODEL_STAGES:
        if stage not in regs:
            continue
        for entry in regs[stage]:
            for field in attrs.fields(entry.config_class):
                ref = field.metadata.get("component")
                if ref is not None:
                    parts.append((f"{entry.name}.{field.name}", ref.stage,
                                  field.metadata["hint"]))
    return parts


def test_every_model_part_is_annotated_with_its_stage_contract():
    regs = get_registries()
    parts = _model_parts()
    assert len(parts) > 40  # the heads and detectors of every plugin
    untyped = []
    for where, stage, hint in parts:
        allowed = {regs[stage].spec.contract} | (HEAD_PROTOCOLS if stage == "head" else set())
        if not _protocols_in(hint) & allowed:
            untyped.append(f"{where} ({stage}): {hint}")
    assert untyped == []


def test_the_config_form_of_a_part_stays_a_table_of_any_values():
    """The annotation is for type checkers: the config class still takes a table (or an
    object) for a part and builds it by its stage."""
    regs = get_registries()
    entry = regs["head"].get("RetinaHead")
    fields = {field.name: field for field in attrs.fields(entry.config_class)}
    assert fields["assigner"].type is Any
    assert fields["assigner"].metadata["component"].stage == "assigner"
    assert fields["assigner"].metadata["is_list"] is False
