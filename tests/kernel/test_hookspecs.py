"""Every stage has a documented, typed hook spec; the public marker is re-exported."""

import inspect

import pluggy

import core
from core import hookspecs


def test_public_marker_is_the_projects_hookimpl():
    assert isinstance(core.impl, pluggy.HookimplMarker)
    assert core.impl.project_name == "plugdet"


def test_every_stage_has_a_documented_spec():
    expected = {
        "backbone",
        "neck",
        "enhance",
        "head",
        "assigner",
        "sampler",
        "coder",
        "loss",
        "vis_backend",
        "dataset",
        "transform",
        "metric",
        "hook",
        "detector",
        "prior_generator",
        "postprocess",
        "weight_converter",
    }
    assert set(hookspecs.STAGES) == expected
    for hook_name in hookspecs.STAGE_HOOKS.values():
        spec = getattr(hookspecs, hook_name)
        assert hasattr(spec, "plugdet_spec"), hook_name
        assert list(inspect.signature(spec).parameters) == ["register"], hook_name
        assert ":param register:" in spec.__doc__, hook_name
        assert spec.__annotations__["register"] == "Register", hook_name
        assert ":class:`core.contracts." in spec.__doc__, hook_name  # names its contract
