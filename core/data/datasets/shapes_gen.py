"""Deterministic generator of the shapes detection set (images + COCO JSON).

Every image is a function of ``(seed, split, index)`` only: a muted, textured background
(gradient, noise, stripes or checkerboard) and a few saturated shapes of random size,
rotation, fill (solid, outlined or striped) and colour (within a hue band per class),
overlapping each other at most moderately. Boxes are the tight bounds of each drawn shape;
with masks, each shape's polygon is written too (a circle as the regular
:data:`CIRCLE_VERTICES`-gon inscribed in its disc, within a tenth of a pixel of the circle).
"""

from __future__ import annotations

import colorsys
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPE_CLASSES = ("circle", "square", "triangle", "star", "cross")
#: centre of each class's hue band (red, green, blue, orange, magenta): colour helps a small
#: model tell the classes apart early, the shape decides between neighbouring bands.
CLASS_HUES = (0.0, 0.33, 0.6, 0.15, 0.83)
HUE_JITTER = 0.06
#: bump when the drawing changes so that caches of older versions are not reused.
GENERATOR_VERSION = 2
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
#: at most this fraction of the smaller of two boxes may be covered by the other.
MAX_OVERLAP = 0.35
PLACEMENT_TRIES = 30
ANNOTATION_FILE = "annotations.json"
IMAGE_DIR = "images"
JPEG_QUALITY = 92
#: vertices of the polygon written for a circle.
CIRCLE_VERTICES = 64


def _polygon(shape: str, cx: float, cy: float, radius: float, angle: float) -> list[tuple]:
    """Vertices of a shape of circumradius ``radius`` centred at ``(cx, cy)``."""
    if shape == "square":
        corners = [(math.pi / 4 + k * math.pi / 2) for k in range(4)]
        points = [(radius, a) for a in corners]
    elif shape == "triangle":
        points = [(radius, -math.pi / 2 + k * 2 * math.pi / 3) for k in range(3)]
    elif shape == "star":
        points = [
            (radius if k % 2 == 0 else radius * 0.45, -math.pi / 2 + k * math.pi / 5)
            for k in range(10)
        ]
    elif shape == "cross":
        arm = 0.34  # half width of an arm, relative to the circumradius
        half = radius / math.sqrt(1 + arm * arm)
        outline = [
            (arm, 1),
            (arm, arm),
            (1, arm),
            (1, -arm),
            (arm, -arm),
            (arm, -1),
            (-arm, -1),
            (-arm, -arm),
            (-1, -arm),
            (-1, arm),
            (-arm, arm),
            (-arm, 1),
        ]
        points = [(half * math.hypot(x, y), math.atan2(y, x)) for x, y in outline]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return [(cx + r * math.cos(a + angle), cy + r * math.sin(a + angle)) for r, a in points]


def _circle(cx: float, cy: float, radius: float) -> list[tuple[float, float]]:
    """The :data:`CIRCLE_VERTICES`-gon inscribed in a circle (its extreme vertices on the
    circle's bounds)."""
    steps = [2 * math.pi * k / CIRCLE_VERTICES for k in range(CIRCLE_VERTICES)]
    return [(cx + radius * math.cos(a), cy + radius * math.sin(a)) for a in steps]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """``(size, size, 3)`` uint8: a muted base colour with a low-contrast texture."""
    base = rng.uniform(60, 190, size=3) * rng.uniform(0.6, 1.0)
    base = base.mean() + (base - base.mean()) * 0.4  # desaturate
    kind = rng.integers(4)
    axis = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    if kind == 0:  # gradient
        direction = rng.uniform(0, 2 * math.pi)
        pattern = np.cos(direction) * axis[None, :] + np.sin(direction) * axis[:, None]
        amplitude = 25.0
    elif kind == 1:  # noise
        pattern = rng.standard_normal((size, size)).astype(np.float32) * 0.5
        amplitude = 14.0
    elif kind == 2:  # stripes
        period = rng.uniform(8, 30)
        direction = rng.uniform(0, math.pi)
        coords = np.cos(direction) * axis[None, :] + np.sin(direction) * axis[:, None]
        pattern = np.sign(np.sin(coords * size / period * math.pi))
        amplitude = 12.0
    else:  # checkerboard
        cell = int(rng.integers(10, 40))
        index = np.arange(size) // cell
        pattern = ((index[None, :] + index[:, None]) % 2) * 2.0 - 1.0
        amplitude = 12.0
    image = base[None, None, :] + amplitude * pattern[:, :, None]
    return np.clip(image, 0, 255).astype(np.uint8)


def _colour(rng: np.random.Generator, label: int, avoid: np.ndarray) -> tuple[int, int, int]:
    """A saturated colour of the class's hue band, far from ``avoid`` (the background's mean)."""
    for _ in range(20):
        hue = (CLASS_HUES[label] + rng.uniform(-HUE_JITTER, HUE_JITTER)) % 1.0
        rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.65, 1.0), rng.uniform(0.7, 1.0))
        colour = np.array(rgb) * 255
        if np.abs(colour - avoid).sum() > 160:
            break
    return tuple(int(c) for c in colour)


def _overlap(a: list[float], b: list[float]) -> float:
    """Intersection of two xyxy boxes over the area of the smaller one."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / smaller


def draw_image(
    rng: np.random.Generator,
    image_size: int,
    object_size: tuple[int, int],
    max_objects: int,
) -> tuple[Image.Image, list[tuple[list[float], int, list[tuple[float, float]]]]]:
    """One image and its ``(xyxy box, class index, polygon)`` list (the polygon of the drawn
    shape, ``(x, y)`` vertices in pixels)."""
    background = _background(rng, image_size)
    avoid = background.reshape(-1, 3).mean(0)
    canvas = Image.fromarray(background)
    draw = ImageDraw.Draw(canvas)
    objects: list[tuple[list[float], int, list[tuple[float, float]]]] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        label = int(rng.integers(len(SHAPE_CLASSES)))
        shape = SHAPE_CLASSES[label]
        for _ in range(PLACEMENT_TRIES):
            side = rng.uniform(*object_size)
            radius = min(side / 2 if shape == "circle" else side / 2 * 1.15, image_size / 2)
            cx, cy = rng.uniform(radius, image_size - radius, size=2)
            angle = rng.uniform(0, 2 * math.pi)
            if shape == "circle":
                points = []
                box = [cx - radius, cy - radius, cx + radius, cy + radius]
            else:
                points = _polygon(shape, cx, cy, radius, angle)
                xs, ys = [p[0] for p in points], [p[1] for p in points]
                box = [min(xs), min(ys), max(xs), max(ys)]
            box = [
                max(0.0, box[0]),
                max(0.0, box[1]),
                min(float(image_size), box[2]),
                min(float(image_size), box[3]),
            ]
            if all(_overlap(box, other) < MAX_OVERLAP for other, _, _ in objects):
                break
        else:
            continue
        fill = _colour(rng, label, avoid)
        dark = tuple(int(c * 0.55) for c in fill)
        style = int(rng.integers(3))  # 0 solid, 1 outlined, 2 striped
        outline = dark if style == 1 else None
        width = int(rng.integers(2, 5)) if style == 1 else 0
        if shape == "circle":
            draw.ellipse(box, fill=fill, outline=outline, width=width)
        else:
            draw.polygon(points, fill=fill, outline=outline, width=max(width, 1))
        if style == 2:
            _stripe(canvas, shape, box, points, dark, rng)
        objects.append((box, label, _circle(cx, cy, radius) if shape == "circle" else points))
    return canvas, objects


def _stripe(
    canvas: Image.Image,
    shape: str,
    box: list[float],
    points: list[tuple],
    colour: tuple[int, int, int],
    rng: np.random.Generator,
) -> None:
    """Paint stripes of ``colour`` inside the shape (its mask), leaving the outline intact."""
    x0, y0 = int(box[0]), int(box[1])
    w, h = math.ceil(box[2]) - x0, math.ceil(box[3]) - y0
    if w <= 2 or h <= 2:
        return
    mask = Image.new("L", (w, h), 0)
    mask_draw = ImageDraw.Draw(mask)
    if shape == "circle":
        mask_draw.ellipse([box[0] - x0, box[1] - y0, box[2] - x0 - 1, box[3] - y0 - 1], fill=255)
    else:
        mask_draw.polygon([(x - x0, y - y0) for x, y in points], fill=255)
    period = int(rng.integers(5, 10))
    stripes = np.zeros((h, w), dtype=np.uint8)
    stripes[(np.arange(h)[:, None] + np.arange(w)[None, :]) % period < period // 2] = 255
    inside = np.minimum(np.asarray(mask), stripes)
    canvas.paste(colour, (x0, y0, x0 + w, y0 + h), Image.fromarray(inside))


def generate(
    out_dir: Path,
    num_images: int,
    image_size: int,
    seed: int,
    split: str,
    object_size: tuple[int, int] = (24, 96),
    max_objects: int = 5,
    with_mask: bool = False,
) -> None:
    """Write ``out_dir/images/*.jpg`` and ``out_dir/annotations.json`` (COCO format); with
    ``with_mask`` each annotation has its shape's polygon as ``segmentation`` and the
    polygon's area as ``area`` (the images and boxes are the same either way)."""
    images_dir = out_dir / IMAGE_DIR
    images_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        rng = np.random.default_rng([seed, SPLIT_IDS[split], index])
        canvas, objects = draw_image(rng, image_size, object_size, max_objects)
        file_name = f"{index:06d}.jpg"
        canvas.save(images_dir / file_name, quality=JPEG_QUALITY)
        images.append(
            {"id": index + 1, "file_name": file_name, "width": image_size, "height": image_size}
        )
        for box, label, polygon in objects:
            x1, y1, x2, y2 = (round(v, 2) for v in box)
            annotation = {
                "id": len(annotations) + 1,
                "image_id": index + 1,
                "category_id": label + 1,
                "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                "area": round((x2 - x1) * (y2 - y1), 2),
                "iscrowd": 0,
            }
            if with_mask:
                vertices = [round(v, 2) for point in polygon for v in point]
                annotation["segmentation"] = [vertices]
                annotation["area"] = round(_area(vertices), 2)
            annotations.append(annotation)
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(SHAPE_CLASSES)]
    content = {"images": images, "annotations": annotations, "categories": categories}
    (out_dir / ANNOTATION_FILE).write_text(json.dumps(content))


def _area(vertices: list[float]) -> float:
    """Shoelace area of a polygon given as ``[x0, y0, x1, y1, ...]``."""
    xs, ys = vertices[0::2], vertices[1::2]
    return abs(sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs)))) / 2


def ensure_generated(folder: Path, generator: Callable[..., None] = generate,
                     **params: object) -> Path:
    """Generate into ``folder`` unless it exists (``generator(folder, **params)``, the shapes
    set by default); safe when processes race for it.

    The set is written to a temporary sibling folder and renamed into place; a process that
    loses the race discards its copy.
    """
    if (folder / ANNOTATION_FILE).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        generator(tmp, **params)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / ANNOTATION_FILE).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def draw_small_objects_image(
    rng: np.random.Generator,
    size: tuple[int, int],
    object_size: tuple[int, int],
    objects: tuple[int, int],
) -> tuple[Image.Image, list[tuple[list[float], int]]]:
    """One large image of ``size = (h, w)`` with many small shapes and its ``(xyxy box, class
    index)`` list: the shapes set's background, classes and colours, ``objects = (lo, hi)``
    shapes (fewer where there is no room) of ``object_size = (lo, hi)`` pixels, solid or
    outlined."""
    height, width = size
    background = _background(rng, max(height, width))[:height, :width]
    avoid = background.reshape(-1, 3).mean(0)
    canvas = Image.fromarray(np.ascontiguousarray(background))
    draw = ImageDraw.Draw(canvas)
    placed: list[tuple[list[float], int]] = []
    for _ in range(int(rng.integers(objects[0], objects[1] + 1))):
        label = int(rng.integers(len(SHAPE_CLASSES)))
        shape = SHAPE_CLASSES[label]
        for _ in range(PLACEMENT_TRIES):
            side = rng.uniform(*object_size)
            radius = side / 2 if shape == "circle" else side / 2 * 1.15
            cx, cy = rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)
            points = [] if shape == "circle" else _polygon(shape, cx, cy, radius,
                                                           rng.uniform(0, 2 * math.pi))
            if shape == "circle":
                box = [cx - radius, cy - radius, cx + radius, cy + radius]
            else:
                xs, ys = [p[0] for p in points], [p[1] for p in points]
                box = [min(xs), min(ys), max(xs), max(ys)]
            box = [max(0.0, box[0]), max(0.0, box[1]), min(float(width), box[2]),
                   min(float(height), box[3])]
            if all(_overlap(box, other) < MAX_OVERLAP for other, _ in placed):
                break
        else:
            continue
        fill = _colour(rng, label, avoid)
        outline = tuple(int(c * 0.55) for c in fill) if rng.integers(2) else None
        if shape == "circle":
            draw.ellipse(box, fill=fill, outline=outline, width=1)
        else:
            draw.polygon(points, fill=fill, outline=outline, width=1)
        placed.append((box, label))
    return canvas, placed


def generate_small_objects(
    out_dir: Path,
    num_images: int,
    image_size: tuple[int, int],
    seed: int,
    split: str,
    object_size: tuple[int, int] = (8, 32),
    objects: tuple[int, int] = (50, 200),
) -> None:
    """Write ``out_dir/images/*.jpg`` and ``out_dir/annotations.json`` (COCO format) of the
    small-objects set: each image's height and width drawn from ``image_size = (lo, hi)``."""
    images_dir = out_dir / IMAGE_DIR
    images_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        rng = np.random.default_rng([seed, SPLIT_IDS[split], index, 1])
        height, width = (int(v) for v in rng.integers(image_size[0], image_size[1] + 1, size=2))
        canvas, placed = draw_small_objects_image(rng, (height, width), object_size, objects)
        file_name = f"{index:06d}.jpg"
        canvas.save(images_dir / file_name, quality=JPEG_QUALITY)
        images.append({"id": index + 1, "file_name": file_name, "width": width,
                       "height": height})
        for box, label in placed:
            x1, y1, x2, y2 = (round(v, 2) for v in box)
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1,
                                "category_id": label + 1,
                                "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                                "area": round((x2 - x1) * (y2 - y1), 2), "iscrowd": 0})
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(SHAPE_CLASSES)]
    content = {"images": images, "annotations": annotations, "categories": categories}
    (out_dir / ANNOTATION_FILE).write_text(json.dumps(content))
