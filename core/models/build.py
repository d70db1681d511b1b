"""Build nested components given either as config tables or as ready objects."""

from __future__ import annotations

from typing import Any

from core.plugins import get_registries
from core.registry import current_build_path, join_path


def build_part(stage: str, value: Any, name: str) -> Any:
    """Return ``value`` built from its table (``{"type": ...}``) or unchanged if already built.

    Parts given in Python code (tests, notebooks) may be objects; default values in a
    component's signature are tables that the registry builds only when the component itself
    comes from a config, so a component built in code calls this for its defaults.

    :param stage: the stage of the part (e.g. ``"assigner"``).
    :param value: a table, an object or None.
    :param name: the parameter holding the part (e.g. ``"assigner"``); errors name it under
        the config path of the component being built (``model.head.assigner``).
    """
    return get_registries().build_nested(stage, value, join_path(current_build_path(), name))
