"""Geometric transforms: resize, flip, crop and pad, moving boxes and masks with the pixels.

Every transform keeps ``sample.gt`` and ``sample.ignore`` (boxes and, where present, polygon
masks) in ``img_shape`` coordinates and updates the meta data the model needs to map
predictions back: ``scale_factor`` (``img = ori * scale``), ``flip``/``flip_direction``,
``img_shape`` and ``pad_shape``. Sizes are ``(h, w)``.
"""

from __future__ import annotations

import math
from typing import Literal

import attrs
import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from core.data.transforms.boxes import (
    check_masks,
    clip_and_filter,
    clip_masks,
    map_instances,
    polygon_masks,
    scale_boxes,
    translate_instances,
)
from core.errors import DataError
from core.structures import DetSample, FlipDirection, Instances, clip_boxes, flip_boxes


def _require_image(sample: DetSample, transform: str) -> torch.Tensor:
    if sample.image is None:
        raise DataError(
            f"{transform}: sample img_id={sample.img_id} ({sample.img_path}) has no image; "
            "put LoadImage first in the pipeline"
        )
    return sample.image


def fit_size(shape: tuple[int, int], scale: tuple[int, int], keep_ratio: bool) -> tuple[int, int]:
    """Output ``(h, w)`` for resizing an image of ``shape`` to ``scale``.

    With ``keep_ratio`` the image is scaled by one factor so that its long side is at most
    ``max(scale)`` and its short side at most ``min(scale)``; otherwise it becomes ``scale``.
    """
    if not keep_ratio:
        return int(scale[0]), int(scale[1])
    h, w = shape
    ratio = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))


def _scaled(instances: Instances, sx: float, sy: float, size: tuple[int, int]) -> Instances:
    boxes = clip_boxes(scale_boxes(instances.boxes, sx, sy), size)
    masks = polygon_masks(instances)
    if masks is None:
        return map_instances(instances, boxes)
    return map_instances(instances, boxes, clip_masks(masks.rescale(sx, sy, size), size))


def resize_sample(sample: DetSample, size: tuple[int, int]) -> DetSample:
    """Resize image, boxes and masks to ``size = (h, w)`` (bilinear, antialiased); update
    meta.

    :raises DataError: no image, or masks that are not polygons in the image's frame.
    """
    image = _require_image(sample, "Resize")
    h, w = int(image.shape[1]), int(image.shape[2])
    check_masks(sample, (h, w), "Resize")
    new_h, new_w = size
    if (new_h, new_w) != (h, w):
        sample.image = TF.resize(image, [new_h, new_w], antialias=True)
    sx, sy = new_w / w, new_h / h
    sample.gt = _scaled(sample.gt, sx, sy, size)
    sample.ignore = _scaled(sample.ignore, sx, sy, size)
    sample.scale_factor = (sample.scale_factor[0] * sx, sample.scale_factor[1] * sy)
    sample.img_shape = sample.pad_shape = size
    return sample


def _flipped(instances: Instances, shape: tuple[int, int], direction: FlipDirection,
             ) -> Instances:
    boxes = flip_boxes(instances.boxes, shape, direction)
    masks = polygon_masks(instances)
    if masks is None:
        return map_instances(instances, boxes)
    return map_instances(instances, boxes, attrs.evolve(masks, shape=shape).flip(direction))


def flip_sample(sample: DetSample, direction: FlipDirection) -> DetSample:
    """Mirror image, boxes and masks; record ``flip`` and ``flip_direction``.

    :raises DataError: no image, or masks that are not polygons in the image's frame.
    """
    image = _require_image(sample, "RandomFlip")
    shape = (int(image.shape[1]), int(image.shape[2]))
    check_masks(sample, shape, "RandomFlip")
    dims = {"horizontal": [2], "vertical": [1], "diagonal": [1, 2]}[direction]
    sample.image = image.flip(dims)
    sample.gt = _flipped(sample.gt, shape, direction)
    sample.ignore = _flipped(sample.ignore, shape, direction)
    sample.flip = True
    sample.flip_direction = direction
    return sample


class Resize:
    """Resize to a fixed scale.

    :param scale: ``(h, w)``; with ``keep_ratio`` the long side is bounded by ``max(scale)``
        and the short side by ``min(scale)`` (orientation does not matter).
    :param keep_ratio: keep the aspect ratio.
    """

    def __init__(self, scale: tuple[int, int] = (640, 640), keep_ratio: bool = True) -> None:
        if min(scale) <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.scale = tuple(scale)
        self.keep_ratio = keep_ratio

    def __call__(self, sample: DetSample, rng: np.random.Generator) -> DetSample:
        image = _require_image(sample, "Resize")
        shape = (int(image.shape[1]), int(image.shape[2]))
        return resize_sample(sample, fit_size(shape, self.scale, self.keep_ratio))


class RandomResize:
    """Resize to a randomly drawn scale.

    :param scales: candidate ``(h, w)`` scales.
    :param mode: ``"range"``: draw long and short side uniformly between those of the first
        two scales; ``"choice"``: pick one of ``scales``.
    :param keep_ratio: as in :class:`Resize`.
    """

    def __init__(
        self,
        scales: list[tuple[int, int]] = [(480, 480), (640, 640)],  # noqa: B006 (config default)
        mode: Literal["range", "choice"] = "range",
        keep_ratio: bool = True,
    ) -> None:
        if mode == "range" and len(scales) != 2:
            raise ValueError(f"mode 'range' needs exactly two scales, got {len(scales)}")
        if not scales:
            raise ValueError("scales must not be empty")
        self.scales = [tuple(s) for s in scales]
        self.mode = mode
        self.keep_ratio = keep_ratio

    def draw_scale(self, rng: np.random.Generator) -> tuple[int, int]:
        """One scale ``(h, w)`` drawn with ``rng``."""
        if self.mode == "choice":
            return self.scales[int(rng.integers(len(self.scales)))]
        (h0, w0), (h1, w1) = self.scales
        if self.keep_ratio:
            longs = sorted((max(h0, w0), max(h1, w1)))
            shorts = sorted((min(h0, w0), min(h1, w1)))
            return int(rng.integers(longs[0], longs[1] + 1)), int(
                rng.integers(shorts[0], shorts[1] + 1)
            )
        return int(rng.integers(min(h0, h1), max(h0, h1) + 1)), int(
            rng.integers(min(w0, w1), max(w0, w1) + 1)
        )

    def __call__(self, sample: DetSample, rng: np.random.Generator) -> DetSample:
        image = _require_image(sample, "RandomResize")
        shape = (int(image.shape[1]), int(image.shape[2]))
        return resize_sample(sample, fit_size(shape, self.draw_scale(rng), self.keep_ratio))


class RandomFlip:
    """Mirror the sample with probability ``prob``.

    :param prob: flip probability.
    :param direction: ``"horizontal"``, ``"vertical"`` or ``"diagonal"`` (both).
    """

    def __init__(
        self,
        prob: float = 0.5,
        direction: Literal["horizontal", "vertical", "diagonal"] = ("horizontal"),
    ) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        self.prob = prob
        self.direction = direction

    def __call__(self, sample: DetSample, rng: np.random.Generator) -> DetSample:
        if rng.random() < self.prob:
            return flip_sample(sample, self.direction)
        return sample


class RandomCrop:
    """Crop a random window of ``crop_size``; boxes are shifted, clipped and dropped together,
    masks are cropped to the window (an instance whose box is dropped loses its mask).

    :param crop_size: ``(h, w)`` of the window (an image smaller than that keeps its size).
    :param min_box_size: boxes narrower or lower than this after clipping are dropped (with
        their labels).
    :param allow_negative_crop: accept windows that lose every ground-truth box; otherwise
        up to ``max_tries`` windows are drawn and, failing that, the sample is left uncropped.
    :param max_tries: attempts at finding a window that keeps a box.
    """

    def __init__(
        self,
        crop_size: tuple[int, int] = (512, 512),
        min_box_size: float = 1.0,
        allow_negative_crop: bool = False,
        max_tries: int = 10,
    ) -> None:
        if min(crop_size) <= 0:
            raise ValueError(f"crop_size must be positive, got {crop_size}")
        self.crop_size = tuple(crop_size)
        self.min_box_size = min_box_size
        self.allow_negative_crop = allow_negative_crop
        self.max_tries = max_tries

    def __call__(self, sample: DetSample, rng: np.random.Generator) -> DetSample:
        image = _require_image(sample, "RandomCrop")
        h, w = int(image.shape[1]), int(image.shape[2])
        crop_h, crop_w = min(self.crop_size[0], h), min(self.crop_size[1], w)
        check_masks(sample, (h, w), "RandomCrop")
        for _ in range(max(1, self.max_tries)):
            top = int(rng.integers(0, h - crop_h + 1))
            left = int(rng.integers(0, w - crop_w + 1))
            gt = self._crop_instances(sample.gt, top, left, (crop_h, crop_w))
            if len(gt) > 0 or len(sample.gt) == 0 or self.allow_negative_crop:
                sample.image = image[:, top : top + crop_h, left : left + crop_w]
                sample.gt = gt
                sample.ignore = self._crop_instances(sample.ignore, top, left, (crop_h, crop_w))
                sample.img_shape = sample.pad_shape = (crop_h, crop_w)
                return sample
        return sample

    def _crop_instances(
        self, instances: Instances, top: int, left: int, shape: tuple[int, int]
    ) -> Instances:
        shifted = translate_instances(instances, -left, -top, shape)
        return clip_and_filter(shifted, shape, self.min_box_size)


class Pad:
    """Pad bottom and right, to a multiple of ``size_divisor`` or to a fixed ``size``.

    Boxes and masks stay as they are: they refer to ``img_shape``, which padding keeps.

    :param size_divisor: pad ``h`` and ``w`` up to multiples of this (ignored if ``size``).
    :param size: fixed ``(h, w)`` to pad to (must not be smaller than the image).
    :param pad_value: value written into the padding.
    """

    def __init__(
        self,
        size_divisor: int = 32,
        size: tuple[int, int] | None = None,
        pad_value: float = 0.0,
    ) -> None:
        if size_divisor <= 0:
            raise ValueError(f"size_divisor must be positive, got {size_divisor}")
        self.size_divisor = size_divisor
        self.size = None if size is None else tuple(size)
        self.pad_value = pad_value

    def __call__(self, sample: DetSample, rng: np.random.Generator) -> DetSample:
        image = _require_image(sample, "Pad")
        h, w = int(image.shape[1]), int(image.shape[2])
        if self.size is not None:
            target_h, target_w = self.size
            if target_h < h or target_w < w:
                raise DataError(
                    f"Pad: image {sample.img_path} of size {(h, w)} exceeds pad size {self.size}"
                )
        else:
            target_h = math.ceil(h / self.size_divisor) * self.size_divisor
            target_w = math.ceil(w / self.size_divisor) * self.size_divisor
        if (target_h, target_w) != (h, w):
            sample.image = F.pad(image, (0, target_w - w, 0, target_h - h), value=self.pad_value)
        sample.pad_shape = (target_h, target_w)
        return sample
