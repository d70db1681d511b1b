"""YOLOv5's HSV colour jitter: hue, saturation and value multiplied by random gains."""

from __future__ import annotations

import numpy as np
import torch

from core.api import DataError, DetSample


def rgb_to_hsv(image: torch.Tensor) -> torch.Tensor:
    """Float RGB ``(3, H, W)`` in 0..1 -> HSV ``(3, H, W)``, hue in turns ``[0, 1)``."""
    value, argmax = image.max(0)
    chroma = value - image.min(0).values
    r, g, b = image
    safe = chroma.clamp(min=1e-12)
    sector = torch.stack([((g - b) / safe) % 6.0, (b - r) / safe + 2.0, (r - g) / safe + 4.0])
    hue = torch.where(chroma > 0, sector.gather(0, argmax[None])[0] / 6.0,
                      torch.zeros_like(value))
    saturation = torch.where(value > 0, chroma / value.clamp(min=1e-12),
                             torch.zeros_like(value))
    return torch.stack([hue % 1.0, saturation, value])


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """HSV ``(3, H, W)`` (hue in turns) -> float RGB ``(3, H, W)`` in 0..1.

    Each channel is ``v - v * s * clamp(min(k, 4 - k), 0, 1)`` with
    ``k = (n + 6 * hue) mod 6`` for ``n = 5, 3, 1`` (R, G, B).
    """
    hue, saturation, value = hsv
    channels = []
    for offset in (5.0, 3.0, 1.0):
        k = (offset + 6.0 * hue) % 6.0
        channels.append(value - value * saturation * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0))
    return torch.stack(channels)


class YOLOv5HSVRandomAug:
    """Multiply hue, saturation and value by gains ``1 + U(-1, 1) * gain`` (one draw each).

    Hue wraps around the colour circle; saturation and value are clipped to their range.
    Input and output are uint8 ``(3, H, W)`` RGB (place it before ``Normalize``).

    :param hue_delta: hue gain amplitude (YOLOv5: 0.015).
    :param saturation_delta: saturation gain amplitude (0.7).
    :param value_delta: value gain amplitude (0.4).
    """

    def __init__(self, hue_delta: float = 0.015, saturation_delta: float = 0.7,
                 value_delta: float = 0.4) -> None:
        for name, value in (("hue_delta", hue_delta), ("saturation_delta", saturation_delta),
                            ("value_delta", value_delta)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        self.deltas = np.array([hue_delta, saturation_delta, value_delta])

    def draw_gains(self, rng: np.random.Generator) -> np.ndarray:
        """The ``(hue, saturation, value)`` gains of one call."""
        gains: np.ndarray = rng.uniform(-1.0, 1.0, 3) * self.deltas + 1.0
        return gains

    def __call__(self, sample: DetSample, rng: np.random.Generator) -> DetSample:
        image = sample.image
        if image is None or image.dtype != torch.uint8:
            raise DataError(f"YOLOv5HSVRandomAug: sample img_id={sample.img_id} needs a uint8 "
                            "image (place it after LoadImage and before Normalize)")
        gains = self.draw_gains(rng)
        hsv = rgb_to_hsv(image.to(torch.float32) / 255.0)
        hsv[0] = (hsv[0] * gains[0]) % 1.0
        hsv[1] = (hsv[1] * gains[1]).clamp_(0.0, 1.0)
        hsv[2] = (hsv[2] * gains[2]).clamp_(0.0, 1.0)
        sample.image = hsv_to_rgb(hsv).mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
        return sample
