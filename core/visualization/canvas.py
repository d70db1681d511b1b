"""A matplotlib (Agg) canvas that stacks vector drawings on an RGB image.

Every size argument (line widths, font sizes, marker sizes) is in image pixels. Every drawing
call takes one item or many (``(4,)`` or ``(N, 4)`` boxes, one text or a list, ...), tensors or
arrays, and per-item or shared colours, line styles and widths.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Real
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import Collection, LineCollection, PatchCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from core.visualization.colors import Color, is_single_color, to_mpl_color, to_rgb_uint8

#: Dots per inch of the canvas; sizes given in pixels are converted to points with it.
DPI = 100
_POINTS_PER_PIXEL = 72.0 / DPI
#: Extra fraction of a pixel given to the figure so Agg's integer truncation keeps every pixel.
_SIZE_EPSILON = 0.01
LINE_STYLES = ("-", "--", "-.", ":", "solid", "dashed", "dashdot", "dotted")


def to_numpy(value: Any) -> np.ndarray:
    """A tensor (any device or dtype; bf16 becomes float32), array or nested sequence as a
    numpy array."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return (value.float() if value.dtype == torch.bfloat16 else value).numpy()
    return np.asarray(value)


def as_image(image: Any) -> np.ndarray:
    """Validate an image and return it as ``(H, W, 3)`` uint8 RGB.

    Accepts a numpy array ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` (alpha is
    dropped) or a tensor ``(C, H, W)`` with C = 1 or 3 (the :class:`DetSample` layout). The
    dtype must be uint8.
    """
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise ValueError(
                f"image tensor must be (C, H, W) with C = 1 or 3, got {tuple(image.shape)}"
            )
        image = image.detach().cpu().permute(1, 2, 0).numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array or a tensor, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"image must be (H, W), (H, W, 1|3|4), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image must not be empty, got {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def _as_rows(value: Any, width: int, name: str) -> np.ndarray:
    """``(width,)`` or ``(N, width)`` values as a float ``(N, width)`` array."""
    array = to_numpy(value).astype(np.float64)
    if array.ndim == 1 and array.shape[0] == width:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != width:
        raise ValueError(f"{name}: expected shape ({width},) or (N, {width}), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return array


def _per_item(value: Any, count: int, name: str, is_single: Callable[[Any], bool]) -> list:
    """Repeat a single value ``count`` times or check that a list has ``count`` values."""
    if is_single(value):
        return [value] * count
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == count:
        if not all(is_single(v) for v in value):
            raise ValueError(f"{name}: invalid value in {value!r}")
        return list(value)
    raise ValueError(f"{name}: expected one value or a list of {count}, got {value!r}")


def _is_one_polygon(value: Any) -> bool:
    """Whether ``value`` is a single ``(K, 2)`` vertex array (not a list of polygons)."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value.ndim == 2
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(
            isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_number(c) for c in v)
            for v in value
        )
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _is_line_style(value: Any) -> bool:
    return isinstance(value, str) and value in LINE_STYLES


def _colors(value: Any, count: int, name: str) -> list:
    if value is None or (isinstance(value, str) and value == "none"):
        return ["none"] * count
    return [to_mpl_color(c, name) for c in _per_item(value, count, name, is_single_color)]


def _widths(value: Any, count: int, name: str) -> list[float]:
    widths = _per_item(value, count, name, _is_number)
    if any(w < 0 for w in widths):
        raise ValueError(f"{name}: must be >= 0, got {value!r}")
    return [w * _POINTS_PER_PIXEL for w in widths]


def _line_styles(value: Any, count: int, name: str) -> list[str]:
    if isinstance(value, str) and value not in LINE_STYLES:
        raise ValueError(f"{name}: unknown line style {value!r}; choose from {LINE_STYLES}")
    return _per_item(value, count, name, _is_line_style)


def _strokes(line_styles: Any, line_widths: Any, count: int) -> dict[str, list]:
    """Validated per-item ``linestyles`` and ``linewidths`` (points) of a collection."""
    return {
        "linestyles": _line_styles(line_styles, count, "line_styles"),
        "linewidths": _widths(line_widths, count, "line_widths"),
    }


def _closed_polygons(polygons: list, **style: Any) -> PolyCollection:
    """A collection of closed polygons, each a list of ``(x, y)`` vertices."""
    return PolyCollection(polygons, closed=True, **style)


class Canvas:
    """An RGB image plus the drawings stacked on it since the last :meth:`set_image`."""

    def __init__(self, image: Any | None = None) -> None:
        self._figure = Figure(frameon=False, dpi=DPI)
        self._figure.patch.set_alpha(0.0)
        FigureCanvasAgg(self._figure)
        self._axes = self._figure.add_axes((0.0, 0.0, 1.0, 1.0))
        self._image: np.ndarray | None = None
        if image is not None:
            self.set_image(image)

    @property
    def width(self) -> int:
        return self._require_image().shape[1]

    @property
    def height(self) -> int:
        return self._require_image().shape[0]

    def _require_image(self) -> np.ndarray:
        if self._image is None:
            raise RuntimeError("no image set: call set_image(image) before drawing")
        return self._image

    def set_image(self, image: Any) -> Canvas:
        """Start a new drawing on ``image`` (see :func:`as_image`), discarding earlier ones."""
        self._image = as_image(image)
        height, width = self._image.shape[:2]
        self._axes.clear()
        self._axes.set_axis_off()
        self._axes.patch.set_visible(False)
        self._figure.set_size_inches(
            (width + _SIZE_EPSILON) / DPI, (height + _SIZE_EPSILON) / DPI
        )
        self._axes.set_xlim(0, width)
        self._axes.set_ylim(height, 0)
        return self

    def get_image(self) -> np.ndarray:
        """The image with every drawing so far, ``(H, W, 3)`` uint8 RGB.

        The drawings are rendered on a transparent canvas and alpha-blended over the image,
        so the image itself is never resampled.
        """
        image = self._require_image()
        height, width = image.shape[:2]
        self._figure.canvas.draw()
        buffer = np.asarray(self._figure.canvas.buffer_rgba())  # type: ignore[attr-defined]
        overlay = buffer[:height, :width].astype(np.float32)
        alpha = overlay[:, :, 3:] / 255.0
        blended = image * (1.0 - alpha) + overlay[:, :, :3] * alpha
        return blended.round().clip(0, 255).astype(np.uint8)

    def draw_bboxes(
        self,
        bboxes: Any,
        edge_colors: Color | Sequence[Color] = "g",
        line_styles: str | Sequence[str] = "-",
        line_widths: float | Sequence[float] = 2,
        face_colors: Color | Sequence[Color] | None = None,
        alpha: float = 0.8,
    ) -> Canvas:
        """Draw boxes ``(4,)`` or ``(N, 4)`` xyxy absolute pixels."""
        self._require_image()
        boxes = _as_rows(bboxes, 4, "bboxes")
        if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
            raise ValueError("bboxes: expected xyxy with x2 >= x1 and y2 >= y1")
        polygons = [[(x1, y1), (x2, y1), (x2, y2), (x1, y2)] for x1, y1, x2, y2 in boxes.tolist()]
        return self._add_shapes(
            _closed_polygons, polygons, edge_colors, line_styles, line_widths, face_colors, alpha
        )

    def draw_polygons(
        self,
        polygons: Any,
        edge_colors: Color | Sequence[Color] = "g",
        line_styles: str | Sequence[str] = "-",
        line_widths: float | Sequence[float] = 2,
        face_colors: Color | Sequence[Color] | None = None,
        alpha: float = 0.8,
    ) -> Canvas:
        """Draw closed polygons: one ``(K, 2)`` array (or list of xy pairs) or a list of them."""
        self._require_image()
        if _is_one_polygon(polygons):
            items = [_as_rows(polygons, 2, "polygons")]
        elif isinstance(polygons, (list, tuple)) or to_numpy(polygons).ndim == 3:
            items = [_as_rows(p, 2, f"polygons[{i}]") for i, p in enumerate(polygons)]
        else:
            raise ValueError("polygons: expected a (K, 2) array of vertices or a list of them")
        for index, points in enumerate(items):
            if len(points) < 3:
                raise ValueError(f"polygons[{index}]: needs at least 3 vertices, got {len(points)}")
        vertices = [p.tolist() for p in items]
        return self._add_shapes(
            _closed_polygons, vertices, edge_colors, line_styles, line_widths, face_colors, alpha
        )

    def _add_shapes(
        self,
        make_collection: Callable[..., Collection],
        shapes: list,
        edge_colors: Any,
        line_styles: Any,
        line_widths: Any,
        face_colors: Any,
        alpha: float,
    ) -> Canvas:
        """Add ``make_collection(shapes, **style)``, one validated style entry per shape.

        ``shapes`` are vertex lists (polygons) or matplotlib patches (circles).
        """
        count = len(shapes)
        if count == 0:
            return self
        self._axes.add_collection(
            make_collection(
                shapes,
                edgecolors=_colors(edge_colors, count, "edge_colors"),
                facecolors=_colors(face_colors, count, "face_colors"),
                alpha=alpha,
                **_strokes(line_styles, line_widths, count),
            )
        )
        return self

    def draw_lines(
        self,
        x_datas: Any,
        y_datas: Any,
        colors: Color | Sequence[Color] = "g",
        line_styles: str | Sequence[str] = "-",
        line_widths: float | Sequence[float] = 2,
    ) -> Canvas:
        """Draw segments: ``x_datas[i] = (x_start, x_end)``, ``y_datas[i] = (y_start, y_end)``."""
        self._require_image()
        xs = _as_rows(x_datas, 2, "x_datas")
        ys = _as_rows(y_datas, 2, "y_datas")
        if len(xs) != len(ys):
            raise ValueError(f"x_datas has {len(xs)} lines but y_datas has {len(ys)}")
        count = len(xs)
        if count == 0:
            return self
        segments = np.stack([xs, ys], axis=-1)  # (N, 2 points, xy)
        self._axes.add_collection(
            LineCollection(
                segments,
                colors=_colors(colors, count, "colors"),
                **_strokes(line_styles, line_widths, count),
            )
        )
        return self

    def draw_circles(
        self,
        center: Any,
        radius: Any,
        edge_colors: Color | Sequence[Color] = "g",
        line_styles: str | Sequence[str] = "-",
        line_widths: float | Sequence[float] = 2,
        face_colors: Color | Sequence[Color] | None = None,
        alpha: float = 0.8,
    ) -> Canvas:
        """Draw circles: centres ``(2,)``/``(N, 2)``, radii scalar or ``(N,)``, in pixels."""
        self._require_image()
        centers = _as_rows(center, 2, "center")
        radii = to_numpy(radius).astype(np.float64).reshape(-1)
        if radii.size == 1:
            radii = np.repeat(radii, len(centers))
        if radii.shape != (len(centers),):
            raise ValueError(f"radius: expected 1 or {len(centers)} values, got {radii.size}")
        if (radii < 0).any():
            raise ValueError("radius: must be >= 0")
        circles = [
            Circle((x, y), r) for (x, y), r in zip(centers.tolist(), radii.tolist(), strict=True)
        ]
        return self._add_shapes(
            PatchCollection, circles, edge_colors, line_styles, line_widths, face_colors, alpha
        )

    def draw_points(
        self,
        positions: Any,
        colors: Color | Sequence[Color] = "g",
        marker: str = "o",
        sizes: float | Sequence[float] = 6,
    ) -> Canvas:
        """Draw markers at ``(2,)``/``(N, 2)`` xy positions; ``sizes`` are diameters in pixels."""
        self._require_image()
        points = _as_rows(positions, 2, "positions")
        count = len(points)
        if count == 0:
            return self
        diameters = _widths(sizes, count, "sizes")
        self._axes.scatter(
            points[:, 0],
            points[:, 1],
            c=_colors(colors, count, "colors"),
            marker=marker,
            s=[d * d for d in diameters],
        )
        return self

    def draw_texts(
        self,
        texts: str | Sequence[str],
        positions: Any,
        font_sizes: float | Sequence[float] | None = None,
        colors: Color | Sequence[Color] = "g",
        vertical_alignments: str | Sequence[str] = "top",
        horizontal_alignments: str | Sequence[str] = "left",
        bboxes: dict | Sequence[dict] | None = None,
    ) -> Canvas:
        """Draw texts anchored at ``(2,)``/``(N, 2)`` xy positions.

        :param font_sizes: in pixels; default scales with the image (1/40 of its short side,
            at least 8).
        :param bboxes: matplotlib text box properties (``facecolor``, ``alpha``, ``pad``, ...)
            drawn behind each text, one dict for all or one per text.
        """
        self._require_image()
        items = [texts] if isinstance(texts, str) else list(texts)
        points = _as_rows(positions, 2, "positions")
        if len(items) != len(points):
            raise ValueError(f"{len(items)} texts but {len(points)} positions")
        count = len(items)
        if font_sizes is None:
            font_sizes = max(8.0, min(self.height, self.width) / 40)
        sizes = _widths(font_sizes, count, "font_sizes")
        text_colors = _colors(colors, count, "colors")
        valign = _per_item(
            vertical_alignments,
            count,
            "vertical_alignments",
            lambda v: v in ("top", "center", "bottom", "baseline"),
        )
        halign = _per_item(
            horizontal_alignments,
            count,
            "horizontal_alignments",
            lambda v: v in ("left", "center", "right"),
        )
        boxes = _per_item(bboxes, count, "bboxes", lambda v: v is None or isinstance(v, dict))
        for i, text in enumerate(items):
            self._axes.text(
                points[i, 0],
                points[i, 1],
                str(text),
                fontsize=sizes[i],
                color=text_colors[i],
                verticalalignment=valign[i],
                horizontalalignment=halign[i],
                bbox=boxes[i],
                family="sans-serif",
                clip_on=True,
            )
        return self

    def draw_binary_masks(
        self,
        binary_masks: Any,
        colors: Color | Sequence[Color] = "g",
        alphas: float | Sequence[float] = 0.5,
    ) -> Canvas:
        """Blend masks ``(H, W)`` or ``(N, H, W)`` (bool or 0/1) into the image.

        The drawings so far are flattened into the image first, so later drawings stay on top.
        """
        image = self.get_image()
        masks = to_numpy(binary_masks)
        if masks.ndim == 2:
            masks = masks[None]
        if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
            raise ValueError(
                f"binary_masks: expected (H, W) or (N, H, W) with H, W = {image.shape[:2]}, "
                f"got {masks.shape}"
            )
        if not np.isin(masks, (0, 1)).all():
            raise ValueError("binary_masks: values must be 0/1 or bool")
        count = len(masks)
        rgb = [
            to_rgb_uint8(c, "colors") for c in _per_item(colors, count, "colors", is_single_color)
        ]
        weights = _per_item(alphas, count, "alphas", _is_number)
        blended = image.astype(np.float32)
        for mask, color, weight in zip(masks.astype(bool), rgb, weights, strict=True):
            blended[mask] = blended[mask] * (1 - weight) + np.asarray(color, np.float32) * weight
        return self.set_image(blended.round().clip(0, 255).astype(np.uint8))

    def close(self) -> None:
        """Release the matplotlib figure."""
        self._figure.clear()


__all__ = ["LINE_STYLES", "Canvas", "as_image", "to_numpy"]
