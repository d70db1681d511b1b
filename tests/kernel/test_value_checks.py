"""The constructor checks of ``core.errors`` and ``register_each``: messages name the key, what
was expected and what was given; each name is registered once."""

from __future__ import annotations

import math

import pytest

from core import impl
from core.errors import (
    ConfigError,
    require_at_least,
    require_between,
    require_positive,
    require_positive_int,
)
from core.registry import register_each


@pytest.mark.parametrize(("check", "message"), [
    (lambda: require_at_least("Hook.interval", 0, 1), "Hook.interval: expected >= 1, got 0"),
    (lambda: require_at_least("ramp_tau", -1.5, 0, " (0: no ramp)"),
     "ramp_tau: expected >= 0 (0: no ramp), got -1.5"),
    (lambda: require_positive("eps", 0.0), "eps: expected a positive value, got 0.0"),
    (lambda: require_positive_int("topk", 0), "topk: expected a positive int, got 0"),
    (lambda: require_positive_int("topk", 0.5), "topk: expected a positive int, got 0.5"),
    (lambda: require_between("EMAHook.momentum", 1, 0, 1),
     "EMAHook.momentum: expected 0 < momentum < 1, got 1"),
    (lambda: require_between("momentum", math.nan, 0, 1),
     "momentum: expected 0 < momentum < 1, got nan"),
])
def test_a_value_outside_is_refused_with_key_expectation_and_value(check, message):
    with pytest.raises(ConfigError) as error:
        check()
    assert str(error.value) == message


def test_values_inside_pass():
    require_at_least("interval", 1, 1)
    require_at_least("small_box_size", 0.0, 0)
    require_positive("eps", 1e-9)
    require_positive_int("topk", 1)
    require_between("momentum", 0.0002, 0, 1)


class _Net:
    def forward(self, images):
        return (images,)


class _Other(_Net):
    pass


class _Renamed(_Net):
    pass


class _Plugin:
    @impl
    def register_backbones(self, register):
        register_each(register, _Net, _Other, Short=_Renamed)


def test_register_each_uses_class_names_and_keywords(manager_with):
    registry = manager_with(plugin=_Plugin()).registries["backbone"]
    assert registry.names() == ["Short", "_Net", "_Other"]
    assert registry.get("Short").factory is _Renamed
    assert registry.get("_Other").factory is _Other
