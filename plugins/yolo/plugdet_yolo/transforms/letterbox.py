"""Letterbox resize: keep the aspect ratio, pad to a fixed size with the image centred."""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F

from core.api import (
    PAD_OFFSET_KEY,
    DataError,
    DetSample,
    Instances,
    PolygonMasks,
    map_instances,
    resize_sample,
    translate_boxes,
)


def _shifted(instances: Instances, left: int, top: int, shape: tuple[int, int]) -> Instances:
    """Boxes and polygon masks (resized already) moved by the letterbox padding into the
    ``shape`` frame."""
    boxes = translate_boxes(instances.boxes, left, top)
    if isinstance(instances.masks, PolygonMasks):
        return map_instances(instances, boxes, instances.masks.translate(left, top, shape))
    return map_instances(instances, boxes)


class LetterResize:
    """Resize by one factor to fit ``scale = (H, W)`` and pad to exactly ``(H, W)``.

    The factor is ``min(H / h, W / w)`` (at most 1 unless ``allow_scale_up``); the resized
    image (sides rounded) sits in the middle, the padding split evenly (the odd pixel goes
    to the bottom/right) and filled with ``pad_value``. Boxes and polygon masks follow.
    ``img_shape`` and ``pad_shape`` become ``(H, W)``, ``scale_factor`` the per-axis factors
    actually applied, and ``meta["pad_offset"]`` the ``(left, top)`` shift, so that boxes map
    back exactly with ``DetSample.boxes_to_original`` (``ori = (img - pad_offset) /
    scale_factor`` after the flip is undone inside ``(H, W)``). On an axis the sample was
    flipped along before this transform (``TestTimeAug``'s mirrored views), the recorded
    shift is the right / bottom padding instead: where the image sits before that flip,
    mirrored inside ``(H, W)``.

    :param scale: ``(H, W)`` of the output.
    :param pad_value: value of the padding pixels.
    :param allow_scale_up: enlarge images smaller than ``scale`` (else only shrink).
    """

    def __init__(self, scale: tuple[int, int] = (640, 640), pad_value: float = 114.0,
                 allow_scale_up: bool = True) -> None:
        if len(scale) != 2 or min(scale) <= 0:
            raise ValueError(f"scale must be a positive (H, W), got {scale}")
        self.scale = (int(scale[0]), int(scale[1]))
        self.pad_value = pad_value
        self.allow_scale_up = allow_scale_up

    def __call__(self, sample: DetSample, rng: np.random.Generator) -> DetSample:
        if sample.image is None:
            raise DataError(f"LetterResize: sample img_id={sample.img_id} ({sample.img_path}) "
                            "has no image; put LoadImage first in the pipeline")
        target_h, target_w = self.scale
        h, w = int(sample.image.shape[1]), int(sample.image.shape[2])
        ratio = min(target_h / h, target_w / w)
        if not self.allow_scale_up:
            ratio = min(ratio, 1.0)
        new_h = min(target_h, max(1, round(h * ratio)))
        new_w = min(target_w, max(1, round(w * ratio)))
        prev_dx, prev_dy = sample.pad_offset
        sample = resize_sample(sample, (new_h, new_w))
        top, left = (target_h - new_h) // 2, (target_w - new_w) // 2
        bottom, right = target_h - new_h - top, target_w - new_w - left
        if top or bottom or left or right:
            assert sample.image is not None  # checked above; resize_sample keeps it
            sample.image = F.pad(sample.image, (left, right, top, bottom), value=self.pad_value)
        sample.gt = _shifted(sample.gt, left, top, self.scale)
        sample.ignore = _shifted(sample.ignore, left, top, self.scale)
        sx, sy = new_w / w, new_h / h
        flipped = sample.flip_direction if sample.flip else None
        shift_x = right if flipped in ("horizontal", "diagonal") else left
        shift_y = bottom if flipped in ("vertical", "diagonal") else top
        sample.meta[PAD_OFFSET_KEY] = (prev_dx * sx + shift_x, prev_dy * sy + shift_y)
        sample.img_shape = sample.pad_shape = (target_h, target_w)
        return sample
