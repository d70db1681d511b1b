"""Colour specifications and the class palette used by every drawing call.

A colour is a matplotlib colour name or ``#rrggbb`` string, or an ``(r, g, b)`` tuple of
0-255 integers. Drawing calls accept one colour for all items or a list with one per item.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real
from typing import Any

from matplotlib import colors as mcolors

Color = str | tuple[int, int, int]

#: 20 well separated colours (matplotlib "tab20" order), cycled over class indices.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (174, 199, 232),
    (255, 187, 120),
    (152, 223, 138),
    (255, 152, 150),
    (197, 176, 213),
    (196, 156, 148),
    (247, 182, 210),
    (199, 199, 199),
    (219, 219, 141),
    (158, 218, 229),
)


def class_color(label: int) -> tuple[int, int, int]:
    """The palette colour of class index ``label`` (cycled past 20 classes)."""
    return PALETTE[label % len(PALETTE)]


def is_single_color(value: Any) -> bool:
    """Whether ``value`` is one colour (a string or an RGB triple) rather than a list."""
    if isinstance(value, str):
        return True
    return (
        isinstance(value, Sequence)
        and len(value) == 3
        and all(isinstance(v, Real) and not isinstance(v, bool) for v in value)
    )


def to_mpl_color(color: Color, what: str = "color") -> str | tuple[float, float, float]:
    """Convert one colour into what matplotlib accepts; raise ``ValueError`` if invalid."""
    if isinstance(color, str):
        if not mcolors.is_color_like(color):
            raise ValueError(f"{what}: unknown colour {color!r}")
        return color
    if is_single_color(color) and all(0 <= c <= 255 for c in color):
        return tuple(float(c) / 255.0 for c in color)  # type: ignore[return-value]
    raise ValueError(
        f"{what}: expected a colour name or an (r, g, b) tuple of 0-255, got {color!r}"
    )


def to_rgb_uint8(color: Color, what: str = "color") -> tuple[int, int, int]:
    """One colour as an ``(r, g, b)`` tuple of 0-255 integers."""
    rgb = mcolors.to_rgb(to_mpl_color(color, what))
    return tuple(round(c * 255) for c in rgb)  # type: ignore[return-value]
