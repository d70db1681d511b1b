"""Pixel-value transforms: colour distortion and normalization (boxes are untouched)."""

from __future__ import annotations

import numpy as np
import torch

from core.errors import DataError
from core.structures import DetSample

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


#: ITU-R 601-2 luma weights of R, G, B (as torchvision's ``rgb_to_grayscale``).
LUMA = (0.2989, 0.587, 0.114)
MAX_VALUE = 255.0


def grayscale(image: torch.Tensor) -> torch.Tensor:
    """Luma of a float ``(3, H, W)`` image -> ``(1, H, W)``."""
    r, g, b = image
    return (r * LUMA[0]).add_(g, alpha=LUMA[1]).add_(b, alpha=LUMA[2]).unsqueeze(0)


def shift_hue_(image: torch.Tensor, shift: float) -> torch.Tensor:
    """Rotate the HSV hue of a float ``(3, H, W)`` image in place by ``shift`` turns.

    Value (max channel) and chroma (max - min) stay; each channel is rebuilt from the shifted
    hue with the standard HSV formula ``c = max - chroma * clamp(min(k, 4 - k), 0, 1)``,
    ``k = (n + hue * 6) mod 6`` for ``n = 5, 3, 1`` (R, G, B). Equal to torchvision's
    ``adjust_hue`` up to rounding, without building the HSV image.
    """
    r, g, b = image
    value = image.amax(0)
    chroma = value - image.amin(0)
    # hue in sixths of a turn, times chroma: which channel is the max picks the sector
    hue = torch.where(
        value == r,
        g - b,
        torch.where(value == g, (b - r).add_(chroma, alpha=2.0), (r - g).add_(chroma, alpha=4.0)),
    )
    hue.mul_(chroma.clamp(min=1e-6).reciprocal_()).add_(6.0 * shift + 6.0)
    for channel, offset in enumerate((5.0, 3.0, 1.0)):
        k = hue + offset
        k -= 6.0 * torch.floor(k * (1.0 / 6.0))
        weight = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
        image[channel] = value - chroma * weight
    return image


class PhotoMetricDistortion:
    """Random brightness, contrast, saturation and hue changes, each applied with ``prob``.

    The operations of torchvision's ``adjust_brightness``, ``adjust_contrast``,
    ``adjust_saturation`` and ``adjust_hue`` (in this order), computed in one float32 pass:
    the image is converted once instead of once per operation. Input and output are uint8
    ``(3, H, W)`` (place it before :class:`Normalize`).

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
        brightness = _uniform(rng, self.brightness)
        contrast = _uniform(rng, self.contrast)
        saturation = _uniform(rng, self.saturation)
        hue = float(rng.uniform(-self.hue, self.hue))
        if not apply.any():
            return sample
        pixels = image.to(torch.float32)
        if apply[0]:
            pixels.mul_(brightness).clamp_(0.0, MAX_VALUE)
        if apply[1]:
            mean = grayscale(pixels).mean()
            pixels.mul_(contrast).add_(mean * (1.0 - contrast)).clamp_(0.0, MAX_VALUE)
        if apply[2]:
            gray = grayscale(pixels)
            pixels.mul_(saturation).add_(gray, alpha=1.0 - saturation).clamp_(0.0, MAX_VALUE)
        if apply[3] and hue != 0.0:
            shift_hue_(pixels, hue)
        sample.image = pixels.round_().to(torch.uint8)
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
