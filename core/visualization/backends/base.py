"""The interface every vis backend implements (stage ``vis_backend``)."""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
import torch
from torch import nn


class BaseVisBackend(abc.ABC):
    """Receives what the :class:`~core.visualization.visualizer.Visualizer` records.

    The contract is :class:`core.contracts.VisBackend`. A subclass overrides what it can store:
    ``add_scalars`` at least; images, the config, histograms, text, model graphs and model
    watching are optional (the defaults ignore them), so a scalar-only backend overrides one
    method. Backends start their storage lazily on the first write, so building one has no
    side effect.

    :param save_dir: the run's work dir; the Visualizer passes it to every backend it builds.
    """

    def __init__(self, save_dir: str = "") -> None:
        self.save_dir = save_dir

    @property
    def experiment(self) -> Any:
        """The backend's native object (a ``SummaryWriter``, a wandb run, ...)."""
        return self

    def add_config(self, config: dict[str, Any]) -> None:
        """Record the run's merged config (plain nested dicts); ignored by default."""

    def add_image(self, name: str, image: np.ndarray, step: int = 0) -> None:
        """Record an ``(H, W, 3)`` uint8 RGB image; ignored by default."""

    @abc.abstractmethod
    def add_scalars(self, scalars: dict[str, float], step: int = 0) -> None:
        """Record several scalars of one step."""

    def add_scalar(self, name: str, value: float, step: int = 0) -> None:
        """Record one scalar."""
        self.add_scalars({name: value}, step)

    def add_histogram(self, name: str, values: torch.Tensor | np.ndarray, step: int = 0) -> None:
        """Record the distribution of ``values`` (any shape); ignored by default."""

    def add_text(self, name: str, text: str, step: int = 0) -> None:
        """Record free text (environment info, notes); ignored by default."""

    def add_graph(self, model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> None:
        """Record the graph of ``model`` traced on ``inputs``; ignored by default."""

    def watch(self, model: nn.Module) -> None:
        """Let the backend follow ``model`` (parameters, gradients) natively; ignored by default."""

    def close(self) -> None:
        """Flush and release the storage; nothing to release by default."""
