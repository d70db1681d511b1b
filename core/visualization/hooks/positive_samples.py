"""PositiveSamplesHook: which priors the assigner makes positive, on the batches being trained."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from core.data.transforms.photometric import Normalize
from core.engine.hooks.base import PRIORITIES, Hook
from core.engine.randomness import isolated_rng
from core.errors import require_at_least
from core.visualization.positive_grid import draw_positive_grid
from core.visualization.positives import ImagePositives, collect_positives, dense_head_of

if TYPE_CHECKING:
    from core.engine.runner import Runner
    from core.structures import DetBatch

#: Dataset wrappers searched (``.dataset``) for the pipeline's Normalize.
MAX_WRAPPER_DEPTH = 4


def find_normalize(dataset: Any) -> Normalize | None:
    """The ``Normalize`` of the dataset's pipeline (looking through wrapper datasets)."""
    for _ in range(MAX_WRAPPER_DEPTH):
        transforms = getattr(getattr(dataset, "pipeline", None), "transforms", None) or []
        for transform in transforms:
            if isinstance(transform, Normalize):
                return transform
        dataset = getattr(dataset, "dataset", None)
        if dataset is None:
            break
    return None


def displayable(image: torch.Tensor, normalize: Normalize | None) -> np.ndarray:
    """``(3, H, W)`` network input -> ``(H, W, 3)`` uint8 RGB (de-normalized, or stretched to
    0..255 when the pipeline's normalization is unknown)."""
    image = image.detach().float().cpu()
    if normalize is not None:
        pixels = normalize.denormalize(image)
    else:
        low, high = image.min(), image.max()
        pixels = ((image - low) / (high - low).clamp(min=1e-6) * 255).round().byte()
    return pixels.permute(1, 2, 0).contiguous().numpy()


@contextlib.contextmanager
def untouched_buffers(model: nn.Module) -> Iterator[None]:
    """Run a forward pass in training mode without moving running statistics (BatchNorm)."""
    saved = [(buffer, buffer.detach().clone()) for buffer in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


class PositiveSamplesHook(Hook):
    """Every ``interval`` training iterations, draw the positive priors of the first
    ``num_images`` images of the batch about to be trained, as the model sees it (after the
    training pipeline: augmentation, mosaic, padding) and with the current weights.

    The head's own ``get_assignments(feats, samples)`` decides (any assigner, dynamic ones
    with the current predictions); the forward pass runs without gradients, in training mode,
    with the running statistics and every random generator restored afterwards, so training
    is unchanged. The grid (one row per image, one column per level: ground truth in a colour
    per box, each positive prior as a dot in the colour of its box) goes to every vis backend
    as ``name`` at step = the iteration number counted from 1.

    It is in the default hooks switched off (``enabled = false``): a disabled hook does
    nothing at all; switch it on with ``--set default_hooks.positive_samples.enabled=true``.

    :param interval: iterations between two drawings; must be >= 1.
    :param num_images: images of the batch drawn (fewer when the batch is smaller).
    :param enabled: draw at all.
    :param show_prior: also draw anchor priors as dashed boxes.
    :param min_panel: panels are enlarged to at least this many pixels on their long side.
    :param name: the image's name in the vis backends.
    """

    priority = PRIORITIES["LOW"]

    def __init__(self, interval: int = 50, num_images: int = 2, enabled: bool = True,
                 show_prior: bool = False, min_panel: int = 256,
                 name: str = "train/positive_samples") -> None:
        require_at_least("PositiveSamplesHook.interval", interval, 1)
        require_at_least("PositiveSamplesHook.num_images", num_images, 1)
        self.interval = interval
        self.num_images = num_images
        self.enabled = enabled
        self.show_prior = show_prior
        self.min_panel = min_panel
        self.name = name
        #: Drawings made and the seconds they took (reported after training).
        self.drawings = 0
        self.seconds = 0.0
        self._normalize: Normalize | None = None

    def before_train(self, runner: Runner) -> None:
        if not self.enabled:
            return
        dense_head_of(runner.model)  # fail at start, not at the first drawing
        self._normalize = find_normalize(getattr(runner.train_loader, "dataset", None))

    def before_train_iter(self, runner: Runner, batch_idx: int, batch: DetBatch) -> None:
        step = runner.iter + 1
        if not self.enabled or runner.rank != 0 or step % self.interval != 0:
            return
        start = time.perf_counter()
        image = self.draw(runner.model, batch.to(runner.device), runner.visualizer)
        runner.visualizer.add_image(self.name, image, step)
        self.drawings += 1
        self.seconds += time.perf_counter() - start

    def after_train(self, runner: Runner) -> None:
        if self.enabled and self.drawings:
            runner.logger.info(f"PositiveSamplesHook: {self.drawings} drawings in "
                               f"{self.seconds:.2f} s")

    def positives(self, model: nn.Module, batch: DetBatch) -> list[ImagePositives]:
        """The positives of the first ``num_images`` images of ``batch`` (on the model's
        device), as the model assigns them in its current mode; nothing of the training
        state changes (gradients, running statistics, random generators)."""
        count = min(self.num_images, len(batch.samples))
        with torch.no_grad(), isolated_rng(), untouched_buffers(model):
            return collect_positives(model, batch.images[:count], batch.samples[:count])

    def draw(self, model: nn.Module, batch: DetBatch, canvas: Any) -> np.ndarray:
        """The grid of the first ``num_images`` images of ``batch`` (on the model's device).

        :returns: ``(H', W', 3)`` uint8 RGB (see
            :func:`~core.visualization.positive_grid.draw_positive_grid`).
        """
        positives = self.positives(model, batch)
        pictures = [displayable(image, self._normalize)
                    for image in batch.images[:len(positives)]]
        return draw_positive_grid(canvas, pictures, positives, self.min_panel, self.show_prior)
