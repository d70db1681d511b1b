"""Plugin entry point: registers the Weights & Biases vis backend."""

from __future__ import annotations

from core.api import Register, impl
from plugdet_wandb.backend import WandbVisBackend


@impl
def register_vis_backends(register: Register) -> None:
    register("WandbVisBackend", WandbVisBackend)
