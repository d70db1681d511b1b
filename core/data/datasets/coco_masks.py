"""COCO ``segmentation`` fields read as polygons.

Polygons (``[[x0, y0, x1, y1, ...], ...]``) are taken as written. RLE masks (``{"size": [h,
w], "counts": ...}``, compressed or not) are decoded and traced back to polygons: the outer
boundaries of the bitmap at level 0.5 (``contourpy`` on the zero-padded bitmap, pixel centres
on the grid). A straight boundary then lies exactly on the pixel edges, but every corner is
cut through the middles of its two edges (half a pixel from the corner), so a traced mask
loses 1/8 pixel per convex corner and gains as much per concave one; a one-pixel mask becomes
a diamond of half a pixel. Holes are not kept (a polygon mask has none): a hole in an RLE
mask is filled. Polygons reaching past the image are cut to it (:func:`inside_image`), as the
boxes are clipped.
"""

from __future__ import annotations

import math
from typing import Any, cast

import contourpy
import numpy as np
from contourpy import FillType
from pycocotools import mask as mask_utils

from core.data.datasets.mask_columns import InstancePolygons
from core.masks import clip_polygon


def _without_collinear(points: np.ndarray) -> np.ndarray:
    """A closed polygon without the vertices that lie on the line of their neighbours."""
    before, after = np.roll(points, 1, axis=0), np.roll(points, -1, axis=0)
    cross = ((points[:, 0] - before[:, 0]) * (after[:, 1] - points[:, 1])
             - (points[:, 1] - before[:, 1]) * (after[:, 0] - points[:, 0]))
    return points[cross != 0]


def bitmap_polygons(bitmap: np.ndarray) -> InstancePolygons:
    """The outer boundaries of the regions of a ``(h, w)`` bitmap as ``(K, 2)`` float32
    polygons in pixels (pixel ``(r, c)`` covers ``[c, c + 1] x [r, r + 1]``); see the module
    docstring for the half-pixel approximation."""
    rows, cols = np.flatnonzero(bitmap.any(axis=1)), np.flatnonzero(bitmap.any(axis=0))
    if not len(rows):
        return []
    top, left = int(rows[0]), int(cols[0])
    cropped = bitmap[top:int(rows[-1]) + 1, left:int(cols[-1]) + 1]
    padded = np.pad(cropped.astype(np.float64), 1)
    generator = contourpy.contour_generator(z=padded, fill_type=FillType.OuterOffset)
    # FillType.OuterOffset: the points of each outer boundary with its holes, their offsets
    outers, offsets = cast("tuple[list[np.ndarray], list[np.ndarray]]",
                           generator.filled(0.5, math.inf))
    # grid index (padded, cropped) -> pixel centre: x = col - 1 + left + 0.5
    shift = np.asarray([left - 0.5, top - 0.5])
    polygons = []
    for points, ends in zip(outers, offsets, strict=True):
        outer = points[: int(ends[1])][:-1]  # the closing vertex repeats the first
        outer = _without_collinear(outer + shift)
        if len(outer) >= 3:
            polygons.append(outer.astype(np.float32))
    return polygons


def _rle_polygons(rle: dict[str, Any], height: int, width: int) -> InstancePolygons | str:
    size = rle.get("size")
    counts = rle.get("counts")
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        return f"RLE size {size!r} is not [height, width]"
    if [int(v) for v in size] != [height, width]:
        return f"RLE size {list(size)} differs from the {height}x{width} image"
    if isinstance(counts, list):
        if not all(isinstance(v, int) and v >= 0 for v in counts) or sum(counts) != height * width:
            return f"uncompressed RLE counts do not cover the {height}x{width} image"
        encoded = mask_utils.frPyObjects({"size": [height, width], "counts": counts},
                                         height, width)
    elif isinstance(counts, (str, bytes)):
        encoded = {"size": [height, width],
                   "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    else:
        return f"RLE counts {type(counts).__name__} is neither a list nor a string"
    try:
        bitmap = mask_utils.decode(encoded)
    except (ValueError, TypeError, UnicodeError) as exc:
        return f"undecodable RLE ({exc})"
    polygons = bitmap_polygons(bitmap)
    return polygons or "RLE mask is empty"


def _polygon_list(values: list[Any]) -> InstancePolygons | str:
    polygons = []
    for part in values:
        if not isinstance(part, (list, tuple)):
            return f"polygon {part!r} is not a list of coordinates"
        try:
            array = np.asarray(part, dtype=np.float64)
        except (TypeError, ValueError):
            return f"polygon {part!r} is not a list of numbers"
        if array.ndim != 1 or len(array) % 2 or not np.isfinite(array).all():
            return f"polygon of {len(array)} values is not finite x, y pairs"
        if len(array) < 6:
            return f"polygon {part!r} has fewer than 3 points"
        polygons.append(array.reshape(-1, 2).astype(np.float32))
    return polygons or "empty segmentation"


def read_segmentation(segmentation: Any, height: int, width: int) -> InstancePolygons | str:
    """The polygons of a COCO ``segmentation`` of an image of ``height x width`` pixels, or
    why there are none: a polygon with fewer than 3 points or not of number pairs, an RLE
    whose ``size`` differs from the image or that cannot be decoded, an empty or missing
    segmentation."""
    if isinstance(segmentation, dict):
        return _rle_polygons(segmentation, height, width)
    if isinstance(segmentation, list):
        return _polygon_list(segmentation)
    if segmentation is None:
        return "no segmentation"
    return f"segmentation of type {type(segmentation).__name__} is neither polygons nor RLE"


def inside_image(polygons: InstancePolygons, width: int, height: int) -> InstancePolygons:
    """The polygons cut to the ``width x height`` image (those inside it unchanged); parts
    with less than 3 vertices left are dropped."""
    out = []
    for points in polygons:
        if points.min() < 0 or points[:, 0].max() > width or points[:, 1].max() > height:
            points = clip_polygon(points, (0.0, 0.0, float(width), float(height)))
        if len(points) >= 3:
            out.append(points)
    return out
