"""The largest image plugdet decodes, checked from the file header before any decoding.

A compressed file says little about its decoded size: a 140 kB PNG can announce 12000 x 12000
pixels, 432 MB as RGB bytes and several GB once the pipeline has made its float copies. Every
image is therefore measured from its header first and refused above :func:`max_image_pixels`
(a :class:`~core.errors.DataError` naming the file, its size and how to raise the limit).

The default, :data:`DEFAULT_MAX_IMAGE_PIXELS` = 100 megapixels (10000 x 10000), lies between
PIL's own thresholds (a warning above 89.5 megapixels, an error above twice that): it takes
the photos of nearly all cameras (up to about 60 megapixels) and large aerial tiles, whereas a
detector resizes its input to about a megapixel anyway. The environment variable
:data:`MAX_PIXELS_ENV` sets another limit; it replaces PIL's thresholds for plugdet's
reading, so raising it also reads images PIL alone would refuse.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from core.errors import ConfigError, DataError

#: Environment variable with the largest image (width x height, in pixels) to decode.
MAX_PIXELS_ENV = "PLUGDET_MAX_IMAGE_PIXELS"
#: The limit without :data:`MAX_PIXELS_ENV`: 100 megapixels (see the module docstring).
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000


def max_image_pixels() -> int:
    """The largest image decoded, in pixels: :data:`MAX_PIXELS_ENV`, else the default.

    :raises ConfigError: the variable is set but not a whole number above 0.
    """
    value = os.environ.get(MAX_PIXELS_ENV, "")
    if not value.strip():
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit < 1:
        raise ConfigError(f"{MAX_PIXELS_ENV}={value!r}: expected a whole number of pixels "
                          f"above 0 (default {DEFAULT_MAX_IMAGE_PIXELS})")
    return limit


@contextlib.contextmanager
def pil_limit_lifted() -> Iterator[None]:
    """Run the body without PIL's decompression-bomb check (plugdet's own check applies)."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def header_size(content: bytes) -> tuple[int, int] | None:
    """``(width, height)`` read from the header of an encoded image (nothing is decoded), or
    ``None`` when PIL cannot read the header."""
    try:
        with pil_limit_lifted(), Image.open(io.BytesIO(content)) as image:
            return image.size
    except (OSError, ValueError):
        return None


def check_pixel_count(path: str | Path, content: bytes) -> None:
    """Refuse the encoded image ``content`` of file ``path`` when its header announces more
    than :func:`max_image_pixels` pixels. A header PIL cannot read is left to the decoder.

    :raises DataError: the image is too large (names the file, its size and the remedy).
    :raises ConfigError: :data:`MAX_PIXELS_ENV` is not a valid number.
    """
    limit = max_image_pixels()
    size = header_size(content)
    if size is None:
        return
    width, height = size
    pixels = width * height
    if pixels > limit:
        raise DataError(f"{path}: {width}x{height} image ({pixels / 1e6:.1f} megapixels) "
                        f"exceeds the limit of {limit} pixels; to read it, set the "
                        f"environment variable {MAX_PIXELS_ENV}={pixels} (or more)")
