"""Plugin entry point: registers the TensorBoard vis backend."""

from __future__ import annotations

from core.api import Register, impl
from plugdet_tensorboard.backend import TensorboardVisBackend


@impl
def register_vis_backends(register: Register) -> None:
    register("TensorboardVisBackend", TensorboardVisBackend)
