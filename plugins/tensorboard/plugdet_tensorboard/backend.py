"""TensorboardVisBackend: event files under ``save_dir/vis_data/tensorboard``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from core.api import BaseVisBackend, dump_config

CONFIG_TAG = "config"


def as_markdown_code(text: str) -> str:
    """Indent every line by four spaces so TensorBoard's markdown shows it verbatim."""
    return "\n".join("    " + line for line in text.splitlines())


class TensorboardVisBackend(BaseVisBackend):
    """Write scalars, images, the config (as text), histograms and model graphs to TensorBoard.

    The ``SummaryWriter`` is created on first use; ``experiment`` returns it.

    :param save_dir: the run's work dir; events go to ``save_dir/vis_data/tensorboard``.
    :param flush_secs: how often the writer flushes pending events to disk.
    """

    def __init__(self, save_dir: str = "", flush_secs: int = 10) -> None:
        super().__init__(save_dir)
        self.log_dir = Path(save_dir) / "vis_data" / "tensorboard"
        self.flush_secs = flush_secs
        self._writer: SummaryWriter | None = None

    @property
    def experiment(self) -> SummaryWriter:
        if self._writer is None:
            self._writer = SummaryWriter(log_dir=str(self.log_dir), flush_secs=self.flush_secs)
        return self._writer

    def add_config(self, config: dict[str, Any]) -> None:
        self.experiment.add_text(CONFIG_TAG, as_markdown_code(dump_config(config)), 0)

    def add_image(self, name: str, image: np.ndarray, step: int = 0) -> None:
        self.experiment.add_image(name, image, step, dataformats="HWC")

    def add_scalars(self, scalars: dict[str, float], step: int = 0) -> None:
        for name, value in scalars.items():
            self.experiment.add_scalar(name, value, step)

    def add_histogram(self, name: str, values: torch.Tensor | np.ndarray, step: int = 0) -> None:
        self.experiment.add_histogram(name, values, step)

    def add_text(self, name: str, text: str, step: int = 0) -> None:
        self.experiment.add_text(name, as_markdown_code(text), step)

    def add_graph(self, model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> None:
        self.experiment.add_graph(model, inputs)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
