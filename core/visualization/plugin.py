"""Built-in plugin: the local vis backend."""

from __future__ import annotations

from core import impl
from core.hookspecs import Register
from core.registry import register_each
from core.visualization.backends.local import LocalVisBackend


@impl
def register_vis_backends(register: Register) -> None:
    register_each(register, LocalVisBackend)
