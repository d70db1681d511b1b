"""Pairing a val/test batch with its predictions, and loading original images."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

from core.data.transforms.loading import read_image
from core.errors import DataError
from core.structures import DetBatch, DetSample, Instances


def samples_with_predictions(batch: DetBatch, outputs: Sequence[Instances]) -> list[DetSample]:
    """One sample per predicted image with ``pred`` set (test-time augmentation included).

    With test-time augmentation the batch holds several views of each image; the first view of
    each ``img_id`` stands for the image (its ground truth is mapped back to the original frame
    when drawn or scored).
    """
    samples = list(batch.samples)
    if len(samples) != len(outputs):
        firsts: dict[int, DetSample] = {}
        for sample in samples:
            firsts.setdefault(sample.img_id, sample)
        samples = list(firsts.values())
    if len(samples) != len(outputs):
        raise ValueError(
            f"{len(outputs)} predictions for a batch of {len(batch.samples)} samples "
            f"({len(samples)} distinct images)"
        )
    return [
        attrs.evolve(sample, image=None, pred=pred.to("cpu"))
        for sample, pred in zip(samples, outputs, strict=True)
    ]


def load_original_image(sample: DetSample) -> np.ndarray:
    """The sample's image file as ``(H, W, 3)`` uint8 RGB (what the predictions refer to)."""
    if not sample.img_path:
        raise DataError(f"sample img_id={sample.img_id} has no img_path to draw on")
    return read_image(sample.img_path).permute(1, 2, 0).numpy()
