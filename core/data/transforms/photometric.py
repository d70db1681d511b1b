"""Pixel-value transforms: colour distortion and normalization (boxes are untouched)."""

from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from core.errors import DataError
from core.structures import DetSample

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


class PhotoMetricDistortion:
    """Random brightness, contrast, saturation and hue changes, each applied with ``prob``.

    Works on uint8 ``(3, H, W)`` images (before :class:`Normalize`).

    :param brightness: range of the brightness factor.
    :param contrast: range of the contrast factor.
    :param saturation: range of the saturation factor.
    :param hue: maximum absolute hue shift (fraction of the colour circle, at most 0.5).
    :param prob: probability of each of the four changes.
    """

    def __init__(
        self,
        brightness: tuple[float, float] = (0.875, 1.125),
        contrast: tuple[float, float] = (0.5, 1.5),
        saturation: tuple[float, float] = (0.5, 1.5),
        hue: float = 0.05,
        prob: float = 0.5,
    ) -> None:
        if not 0.0 <= hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {hue}")
        self.brightness = tuple(brightness)
        self.contrast = tuple(contrast)
        self.saturation = tuple(saturation)
        self.hue = hue
        self.prob = prob

    def __call__(self, sample: DetSample, rng: np.random.Generator) -> DetSample:
        image = sample.image
        if image is None or image.dtype != torch.uint8:
            raise DataError(
                f"PhotoMetricDistortion: sample img_id={sample.img_id} needs a uint8 image "
                "(place it after LoadImage and before Normalize)"
            )
        apply = rng.random(4) < self.prob
        factors = (
            _uniform(rng, self.brightness),
            _uniform(rng, self.contrast),
            _uniform(rng, self.saturation),
            float(rng.uniform(-self.hue, self.hue)),
        )
        if apply[0]:
            image = TF.adjust_brightness(image, factors[0])
        if apply[1]:
            image = TF.adjust_contrast(image, factors[1])
        if apply[2]:
            image = TF.adjust_saturation(image, factors[2])
        if apply[3] and self.hue > 0:
            image = TF.adjust_hue(image, factors[3])
        sample.image = image
        return sample


class Normalize:
    """``(image - mean) / std`` per channel; ``(3, H, W)`` uint8 -> float32.

    :param mean: per-channel mean on the 0-255 scale (RGB order).
    :param std: per-channel standard deviation on the 0-255 scale.
    """

    def __init__(
        self,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        if min(std) <= 0:
            raise ValueError(f"std must be positive, got {std}")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.inv_std = 1.0 / torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, sample: DetSample, rng: np.random.Generator) -> DetSample:
        if sample.image is None:
            raise DataError(f"Normalize: sample img_id={sample.img_id} has no image")
        image = sample.image.to(torch.float32, copy=True)
        sample.image = image.sub_(self.mean).mul_(self.inv_std)
        return sample

    def denormalize(self, image: torch.Tensor) -> torch.Tensor:
        """Inverse for display: ``(3, H, W)`` float32 -> uint8."""
        return (image / self.inv_std + self.mean).round().clamp(0, 255).to(torch.uint8)
