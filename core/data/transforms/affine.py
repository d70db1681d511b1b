"""YOLO-style random affine transform: rotation, scaling, shear and translation in one warp."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from core.data.transforms.boxes import (
    check_masks,
    clip_masks,
    has_polygon,
    map_instances,
    polygon_masks,
)
from core.errors import DataError
from core.masks import PolygonMasks
from core.structures import PAD_OFFSET_KEY, DetSample, Instances

#: guards the divisions of the box filters (as in the references).
EPS = 1e-16


def transform_boxes(boxes: torch.Tensor, matrix: np.ndarray) -> torch.Tensor:
    """The xyxy boxes enclosing the 4 corners of each box mapped by the 3x3 affine ``matrix``.
    ``(N, 4) -> (N, 4)``."""
    x1, y1, x2, y2 = boxes.to(torch.float64).unbind(1)
    corners = torch.stack([torch.stack([x1, y1], 1), torch.stack([x2, y1], 1),
                           torch.stack([x1, y2], 1), torch.stack([x2, y2], 1)], 1)  # (N, 4, 2)
    m = torch.from_numpy(matrix)
    mapped = corners @ m[:2, :2].T + m[:2, 2]
    return torch.cat([mapped.amin(1), mapped.amax(1)], 1).to(boxes.dtype)


def transform_masks(masks: PolygonMasks, matrix: np.ndarray, out_shape: tuple[int, int],
                    ) -> PolygonMasks:
    """Every vertex mapped by the 3x3 affine ``matrix`` (in float64), then clipped to the
    output frame ``out_shape = (h, w)`` (exact: an affine map keeps polygons polygons)."""
    linear, shift = matrix[:2, :2].T, matrix[:2, 2]
    warped = masks.map_points(lambda points: points.astype(np.float64) @ linear + shift,
                              out_shape)
    return clip_masks(warped, out_shape)


def box_candidates(before: torch.Tensor, after: torch.Tensor, scale: float, min_size: float,
                   min_area_ratio: float, max_aspect_ratio: float) -> torch.Tensor:
    """``(N,)`` bool: boxes ``after`` the warp (clipped) wider and higher than ``min_size``,
    keeping more than ``min_area_ratio`` of their area ``before`` times ``scale**2``, with
    an aspect ratio below ``max_aspect_ratio``."""
    w1, h1 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w2, h2 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    aspect = torch.maximum(w2 / (h2 + EPS), h2 / (w2 + EPS))
    area_ratio = w2 * h2 / (w1 * h1 * scale**2 + EPS)
    return ((w2 > min_size) & (h2 > min_size) & (area_ratio > min_area_ratio)
            & (aspect < max_aspect_ratio))


def warp_image(image: torch.Tensor, matrix: np.ndarray, out_shape: tuple[int, int],
               pad_value: float) -> torch.Tensor:
    """uint8 ``(C, H, W)`` warped by ``matrix`` (input -> output pixel coordinates, pixel
    ``i`` spanning ``[i, i + 1)``) into ``out_shape``, bilinear; uncovered pixels get
    ``pad_value``."""
    out_h, out_w = out_shape
    h, w = int(image.shape[1]), int(image.shape[2])
    inverse = torch.from_numpy(np.linalg.inv(matrix)[:2]).to(torch.float32)
    ys, xs = torch.meshgrid(torch.arange(out_h, dtype=torch.float32) + 0.5,
                            torch.arange(out_w, dtype=torch.float32) + 0.5, indexing="ij")
    points = torch.stack([xs, ys, torch.ones_like(xs)], -1) @ inverse.T  # (H', W', 2) input px
    grid = points * torch.tensor([2.0 / w, 2.0 / h]) - 1.0
    shifted = image.to(torch.float32).sub_(pad_value)[None]
    warped = F.grid_sample(shifted, grid[None], mode="bilinear", padding_mode="zeros",
                           align_corners=False)[0]
    return warped.add_(pad_value).round_().clamp_(0, 255).to(torch.uint8)


class RandomAffine:
    """Random rotation, scaling, shear and translation (YOLOv5/v8 ``random_perspective``
    without perspective; MMYOLO's ``YOLOv5RandomAffine``).

    The matrix is ``T @ Sh @ R @ C``: ``C`` moves the image centre to the origin, ``R``
    rotates by ``U(-max_rotate_degree, max_rotate_degree)`` degrees and scales by
    ``U(*scaling_ratio_range)``, ``Sh`` shears x and y by ``tan`` of
    ``U(-max_shear_degree, max_shear_degree)`` degrees, and ``T`` puts the origin at
    ``U(0.5 - t, 0.5 + t)`` times the output width and height (``t = max_translate_ratio``).
    The output is ``(h + 2 * border[0], w + 2 * border[1])``: after ``Mosaic`` of tile size
    ``(H, W)`` use ``border = [-H // 2, -W // 2]`` to come back to ``(H, W)``.

    Boxes are the enclosing boxes of their 4 warped corners, clipped to the output; a box is
    dropped (with its label) unless it is wider and higher than ``min_bbox_size``, keeps more
    than ``min_area_ratio`` of its scaled area and has an aspect ratio below
    ``max_aspect_ratio``. Polygon masks are warped vertex by vertex and clipped to the output;
    the box of an instance with a polygon is then the bounding box of its warped, clipped
    polygons instead (tighter than the warped corners under rotation and shear), and an
    instance whose polygons leave the output entirely is dropped. A training transform: the
    result has ``ori_shape = img_shape`` and ``scale_factor = (1, 1)``, like ``Mosaic``'s.
    Input and output are uint8.

    :param max_rotate_degree: largest rotation (degrees).
    :param max_translate_ratio: largest shift, as a fraction of the output size.
    :param scaling_ratio_range: range of the scale factor.
    :param max_shear_degree: largest shear (degrees).
    :param border: ``(top/bottom, left/right)`` pixels added to each side of the output
        (negative: removed).
    :param pad_value: value of output pixels the image does not cover.
    :param min_bbox_size: width and height a kept box must exceed (pixels).
    :param min_area_ratio: area fraction a kept box must exceed.
    :param max_aspect_ratio: aspect ratio a kept box must stay below.
    """

    def __init__(
        self,
        max_rotate_degree: float = 0.0,
        max_translate_ratio: float = 0.1,
        scaling_ratio_range: tuple[float, float] = (0.5, 1.5),
        max_shear_degree: float = 0.0,
        border: tuple[int, int] = (0, 0),
        pad_value: float = 114.0,
        min_bbox_size: float = 2.0,
        min_area_ratio: float = 0.1,
        max_aspect_ratio: float = 20.0,
    ) -> None:
        if not 0.0 <= max_translate_ratio <= 1.0:
            raise ValueError(f"max_translate_ratio must be in [0, 1], got {max_translate_ratio}")
        if not 0.0 < scaling_ratio_range[0] <= scaling_ratio_range[1]:
            raise ValueError(f"scaling_ratio_range must be 0 < low <= high, "
                             f"got {scaling_ratio_range}")
        self.max_rotate_degree = max_rotate_degree
        self.max_translate_ratio = max_translate_ratio
        self.scaling_ratio_range = (float(scaling_ratio_range[0]), float(scaling_ratio_range[1]))
        self.max_shear_degree = max_shear_degree
        self.border = (int(border[0]), int(border[1]))
        self.pad_value = pad_value
        self.min_bbox_size = min_bbox_size
        self.min_area_ratio = min_area_ratio
        self.max_aspect_ratio = max_aspect_ratio

    def output_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """``(h, w)`` of the output for an input of ``shape``."""
        out = (shape[0] + 2 * self.border[0], shape[1] + 2 * self.border[1])
        if min(out) <= 0:
            raise DataError(f"RandomAffine: border {self.border} leaves nothing of a "
                            f"{shape[0]}x{shape[1]} image")
        return out

    def draw_matrix(self, rng: np.random.Generator, shape: tuple[int, int],
                    ) -> tuple[np.ndarray, float]:
        """The 3x3 input -> output matrix and the scale drawn for an image of ``shape``."""
        h, w = shape
        out_h, out_w = self.output_shape(shape)
        angle = math.radians(rng.uniform(-self.max_rotate_degree, self.max_rotate_degree))
        scale = float(rng.uniform(*self.scaling_ratio_range))
        shear_x, shear_y = (math.tan(math.radians(rng.uniform(-self.max_shear_degree,
                                                              self.max_shear_degree)))
                            for _ in range(2))
        t = self.max_translate_ratio
        tx, ty = rng.uniform(0.5 - t, 0.5 + t) * out_w, rng.uniform(0.5 - t, 0.5 + t) * out_h
        centre = np.array([[1.0, 0.0, -w / 2], [0.0, 1.0, -h / 2], [0.0, 0.0, 1.0]])
        cos, sin = scale * math.cos(angle), scale * math.sin(angle)
        rotate = np.array([[cos, sin, 0.0], [-sin, cos, 0.0], [0.0, 0.0, 1.0]])
        shear = np.array([[1.0, shear_x, 0.0], [shear_y, 1.0, 0.0], [0.0, 0.0, 1.0]])
        translate = np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])
        return translate @ shear @ rotate @ centre, scale

    def _instances(self, instances: Instances, matrix: np.ndarray, scale: float,
                   out_shape: tuple[int, int]) -> Instances:
        out_h, out_w = out_shape
        warped = transform_boxes(instances.boxes, matrix)
        limits = warped.new_tensor([out_w, out_h, out_w, out_h])
        warped = torch.minimum(warped.clamp(min=0), limits)
        masks = polygon_masks(instances)
        if masks is None:
            keep = box_candidates(instances.boxes, warped, scale, self.min_bbox_size,
                                  self.min_area_ratio, self.max_aspect_ratio)
            return map_instances(instances, warped)[keep]
        moved = transform_masks(masks, matrix, out_shape)
        had, has = torch.from_numpy(has_polygon(masks)), torch.from_numpy(has_polygon(moved))
        boxes = torch.where(had[:, None], moved.bounding_boxes().to(warped.dtype), warped)
        keep = box_candidates(instances.boxes, boxes, scale, self.min_bbox_size,
                              self.min_area_ratio, self.max_aspect_ratio) & (has | ~had)
        return map_instances(instances, boxes, moved)[keep]

    def __call__(self, sample: DetSample, rng: np.random.Generator) -> DetSample:
        image = sample.image
        if image is None or image.dtype != torch.uint8:
            raise DataError(f"RandomAffine: sample img_id={sample.img_id} ({sample.img_path}) "
                            "needs a uint8 image (place it after LoadImage and before "
                            "Normalize)")
        shape = (int(image.shape[1]), int(image.shape[2]))
        out_shape = self.output_shape(shape)
        check_masks(sample, shape, "RandomAffine")
        matrix, scale = self.draw_matrix(rng, shape)
        sample.image = warp_image(image, matrix, out_shape, self.pad_value)
        sample.gt = self._instances(sample.gt, matrix, scale, out_shape)
        sample.ignore = self._instances(sample.ignore, matrix, scale, out_shape)
        sample.ori_shape = sample.img_shape = sample.pad_shape = out_shape
        sample.scale_factor = (1.0, 1.0)
        sample.flip, sample.flip_direction = False, None
        sample.meta.pop(PAD_OFFSET_KEY, None)
        return sample
