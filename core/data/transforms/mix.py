"""Transforms that combine several samples of the dataset: Mosaic and MixUp.

Both receive the other samples from the pipeline (see :class:`~core.data.transforms.base.
MixTransform`), already passed through the non-mixing transforms placed before them
(typically just LoadImage). Images must still be uint8 ``(3, H, W)``. Polygon masks move,
are clipped and are dropped with their boxes; all samples mixed must have masks, or none.
"""

from __future__ import annotations

import numpy as np
import torch

from core.data.transforms.base import MixTransform, clone_sample
from core.data.transforms.boxes import (
    cat_instances,
    check_masks,
    clip_and_filter,
    map_instances,
    polygon_masks,
    translate_boxes,
    translate_instances,
)
from core.data.transforms.geometric import fit_size, resize_sample
from core.errors import DataError
from core.structures import DetSample, Instances, flip_boxes


def _uint8_image(sample: DetSample, transform: str) -> torch.Tensor:
    if sample.image is None or sample.image.dtype != torch.uint8:
        raise DataError(
            f"{transform}: sample img_id={sample.img_id} ({sample.img_path}) needs a uint8 "
            "image (place it after LoadImage and before Normalize)"
        )
    return sample.image




class Mosaic(MixTransform):
    """Four images (the sample and three others) tiled around a random centre.

    Each image is resized (aspect kept) to fit ``img_scale`` and placed in one quadrant of a
    ``(2h, 2w)`` canvas around the centre ``(cx, cy)``, drawn with
    ``cx / w, cy / h`` in ``center_ratio_range``. Boxes are shifted with their image, clipped
    to the canvas and dropped (with labels) when smaller than ``min_box_size``.

    :param img_scale: ``(h, w)`` of one tile; the output is ``(2h, 2w)``.
    :param center_ratio_range: range of the centre position relative to ``img_scale``.
    :param pad_value: value of canvas pixels no image covers.
    :param prob: probability of applying the mosaic.
    :param min_box_size: smallest box side kept.
    """

    def __init__(
        self,
        img_scale: tuple[int, int] = (640, 640),
        center_ratio_range: tuple[float, float] = (0.5, 1.5),
        pad_value: float = 114.0,
        prob: float = 1.0,
        min_box_size: float = 1.0,
    ) -> None:
        self.img_scale = tuple(img_scale)
        self.center_ratio_range = tuple(center_ratio_range)
        self.pad_value = pad_value
        self.prob = prob
        self.min_box_size = min_box_size

    def mix_count(self, rng: np.random.Generator) -> int:
        return 3 if rng.random() < self.prob else 0

    def __call__(
        self, sample: DetSample, rng: np.random.Generator, others: list[DetSample]
    ) -> DetSample:
        tile_h, tile_w = self.img_scale
        canvas_h, canvas_w = 2 * tile_h, 2 * tile_w
        canvas = torch.full((3, canvas_h, canvas_w), round(self.pad_value), dtype=torch.uint8)
        cx = int(rng.uniform(*self.center_ratio_range) * tile_w)
        cy = int(rng.uniform(*self.center_ratio_range) * tile_h)
        gts: list[Instances] = []
        ignores: list[Instances] = []
        for quadrant, part in enumerate([sample, *others]):
            image = _uint8_image(part, "Mosaic")
            part = clone_sample(part)
            shape = (int(image.shape[1]), int(image.shape[2]))
            check_masks(part, shape, "Mosaic")
            part = resize_sample(part, fit_size(shape, (tile_h, tile_w), keep_ratio=True))
            image = part.image
            h, w = int(image.shape[1]), int(image.shape[2])
            # Canvas region (x1, y1, x2, y2) and the matching region of the tile.
            if quadrant == 0:  # top left: the tile's bottom-right corner sits at the centre
                x1, y1, x2, y2 = max(cx - w, 0), max(cy - h, 0), cx, cy
                tx1, ty1 = w - (x2 - x1), h - (y2 - y1)
            elif quadrant == 1:  # top right
                x1, y1, x2, y2 = cx, max(cy - h, 0), min(cx + w, canvas_w), cy
                tx1, ty1 = 0, h - (y2 - y1)
            elif quadrant == 2:  # bottom left
                x1, y1, x2, y2 = max(cx - w, 0), cy, cx, min(cy + h, canvas_h)
                tx1, ty1 = w - (x2 - x1), 0
            else:  # bottom right
                x1, y1, x2, y2 = cx, cy, min(cx + w, canvas_w), min(cy + h, canvas_h)
                tx1, ty1 = 0, 0
            canvas[:, y1:y2, x1:x2] = image[:, ty1 : ty1 + (y2 - y1), tx1 : tx1 + (x2 - x1)]
            # Pixels of the tile outside its canvas region are cut: clip boxes and masks
            # to the region.
            region = (y2 - y1, x2 - x1)
            dx, dy = -tx1, -ty1
            for placed, instances in ((gts, part.gt), (ignores, part.ignore)):
                cut = clip_and_filter(translate_instances(instances, dx, dy, region), region,
                                      self.min_box_size)
                placed.append(translate_instances(cut, x1, y1, (canvas_h, canvas_w)))
        out = clone_sample(sample)
        out.image = canvas
        where = f"Mosaic: sample img_id={sample.img_id} ({sample.img_path})"
        out.gt = cat_instances(gts, (canvas_h, canvas_w), where)
        out.ignore = cat_instances(ignores, (canvas_h, canvas_w), where)
        out.ori_shape = out.img_shape = out.pad_shape = (canvas_h, canvas_w)
        out.scale_factor = (1.0, 1.0)
        out.flip, out.flip_direction = False, None
        out.meta["mosaic"] = True
        return out


class MixUp(MixTransform):
    """Blend the sample with another one (YOLOX style); ground truth of both is kept.

    The other image is resized to fit ``img_scale`` times a jitter drawn from
    ``ratio_range``, flipped horizontally with ``flip_prob``, placed at the top left of a
    canvas at least as large as the sample's image, and a window of the sample's size is cut at a
    random offset. The result is ``(1 - alpha) * sample + alpha * window``.

    :param img_scale: ``(h, w)`` the other image is fitted to before jitter.
    :param ratio_range: range of the scale jitter.
    :param flip_prob: probability of flipping the other image.
    :param alpha: weight of the other image in the blend.
    :param pad_value: value of canvas pixels the other image does not cover.
    :param prob: probability of applying MixUp.
    :param min_box_size: smallest box side kept.
    """

    def __init__(
        self,
        img_scale: tuple[int, int] = (640, 640),
        ratio_range: tuple[float, float] = (0.5, 1.5),
        flip_prob: float = 0.5,
        alpha: float = 0.5,
        pad_value: float = 114.0,
        prob: float = 1.0,
        min_box_size: float = 1.0,
    ) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.img_scale = tuple(img_scale)
        self.ratio_range = tuple(ratio_range)
        self.flip_prob = flip_prob
        self.alpha = alpha
        self.pad_value = pad_value
        self.prob = prob
        self.min_box_size = min_box_size

    def mix_count(self, rng: np.random.Generator) -> int:
        return 1 if rng.random() < self.prob else 0

    def __call__(
        self, sample: DetSample, rng: np.random.Generator, others: list[DetSample]
    ) -> DetSample:
        base = _uint8_image(sample, "MixUp")
        other = others[0]
        other_image = _uint8_image(other, "MixUp")
        height, width = int(base.shape[1]), int(base.shape[2])
        check_masks(sample, (height, width), "MixUp")
        oh, ow = int(other_image.shape[1]), int(other_image.shape[2])
        check_masks(other, (oh, ow), "MixUp")
        jitter = float(rng.uniform(*self.ratio_range))
        fitted_h, fitted_w = fit_size((oh, ow), self.img_scale, keep_ratio=True)
        new_h, new_w = max(1, int(fitted_h * jitter)), max(1, int(fitted_w * jitter))
        other = resize_sample(clone_sample(other), (new_h, new_w))
        flip = rng.random() < self.flip_prob
        canvas_h, canvas_w = max(height, new_h), max(width, new_w)
        canvas = torch.full((3, canvas_h, canvas_w), round(self.pad_value), dtype=torch.uint8)
        pasted = other.image.flip(2) if flip else other.image
        canvas[:, :new_h, :new_w] = pasted
        top = int(rng.integers(0, canvas_h - height + 1))
        left = int(rng.integers(0, canvas_w - width + 1))
        window = canvas[:, top : top + height, left : left + width]
        mixed = (
            base.to(torch.float32)
            .mul_(1.0 - self.alpha)
            .add_(window.to(torch.float32), alpha=self.alpha)
        )

        def moved(instances: Instances) -> Instances:
            boxes = instances.boxes
            masks = polygon_masks(instances)
            if flip:
                boxes = flip_boxes(boxes, (new_h, new_w), "horizontal")
                masks = None if masks is None else masks.flip("horizontal")
            boxes = translate_boxes(boxes, -left, -top)
            placed = (map_instances(instances, boxes) if masks is None else map_instances(
                instances, boxes, masks.translate(-left, -top, (height, width))))
            return clip_and_filter(placed, (height, width), self.min_box_size)

        out = clone_sample(sample)
        out.image = mixed.round_().clamp_(0, 255).to(torch.uint8)
        where = f"MixUp: sample img_id={sample.img_id} ({sample.img_path})"
        out.gt = cat_instances([sample.gt, moved(other.gt)], (height, width), where)
        out.ignore = cat_instances([sample.ignore, moved(other.ignore)], (height, width), where)
        out.meta["mixup"] = True
        return out
