"""Checking an annotation's recorded image size against the image file.

A labelling tool records the size of the image it showed. Two things make that differ from
the decoded file: an EXIF orientation tag (the camera stored the pixels turned; tools that
honour EXIF show and label the turned image) and resizing the file after labelling. Boxes
of such an image would not lie on the objects, so every image is checked when the dataset
is built, from the file header alone:

* the raw size equals the recorded one: used as stored (an EXIF tag is left alone);
* ``exif_orientation = "auto"`` (default) and the tag turns the image by 90 degrees
  (orientations 5 to 8) so that the turned size equals the recorded one: the image is
  decoded turned;
* ``exif_orientation = "apply"`` always turns by the tag, ``"ignore"`` never does;
* otherwise the sizes disagree: the image is skipped (``size_mismatch = "skip"``, counted
  as ``size_mismatch``) or its boxes are scaled to the file's size
  (``size_mismatch = "rescale"``, counted in ``dataset.repaired``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs
from PIL import Image

from core.data.pixel_limit import pil_limit_lifted
from core.errors import ConfigError

ExifMode = Literal["auto", "apply", "ignore"]
MismatchMode = Literal["skip", "rescale"]
EXIF_MODES = ("auto", "apply", "ignore")
MISMATCH_MODES = ("skip", "rescale")
#: the EXIF tag of the orientation, and its values that swap width and height.
ORIENTATION_TAG = 0x0112
TURNING = frozenset({5, 6, 7, 8})


@attrs.frozen
class ImageSize:
    """How to read an image: its size once decoded, whether to turn it by EXIF and the
    ``(sx, sy)`` factors taking recorded box coordinates to that size (``None``: 1)."""

    width: int
    height: int
    exif_transpose: bool = False
    scale: tuple[float, float] | None = None


def check_modes(exif_orientation: str, size_mismatch: str, owner: str) -> None:
    """Refuse unknown option values, naming the dataset and the option."""
    if exif_orientation not in EXIF_MODES:
        raise ConfigError(f"{owner}.exif_orientation: expected one of {list(EXIF_MODES)}, "
                          f"got {exif_orientation!r}")
    if size_mismatch not in MISMATCH_MODES:
        raise ConfigError(f"{owner}.size_mismatch: expected one of {list(MISMATCH_MODES)}, "
                          f"got {size_mismatch!r}")


def read_header(path: Path) -> tuple[int, int, int]:
    """``(width, height, EXIF orientation)`` of an image file, from its header (at any size:
    decoding checks the pixel count).

    :raises OSError: the file is not a readable image.
    """
    with pil_limit_lifted(), Image.open(path) as image:
        width, height = image.size
        orientation = image.getexif().get(ORIENTATION_TAG, 1)
    return width, height, orientation if isinstance(orientation, int) else 1


def reconcile(recorded: tuple[int, int] | None, header: tuple[int, int, int],
              exif_orientation: ExifMode, size_mismatch: MismatchMode) -> ImageSize | None:
    """The :class:`ImageSize` to use, or ``None`` when the sizes disagree and the image is
    to be skipped. ``recorded`` is ``(width, height)`` or ``None`` when not recorded."""
    width, height, orientation = header
    turning = orientation in TURNING
    turned = (height, width) if turning else (width, height)
    if exif_orientation == "apply":
        actual, transpose = turned, orientation != 1
    elif exif_orientation == "ignore" or recorded in (None, (width, height)) or not turning:
        actual, transpose = (width, height), False
    else:  # auto, the raw size disagrees: tools that honour EXIF labelled the turned image
        actual, transpose = turned, True
    if recorded is None or recorded == actual:
        return ImageSize(*actual, exif_transpose=transpose)
    if size_mismatch == "skip":
        return None
    scale = (actual[0] / recorded[0], actual[1] / recorded[1])
    return ImageSize(*actual, exif_transpose=transpose, scale=scale)


def scale_box(box: list[float], scale: tuple[float, float] | None) -> list[float]:
    """``box`` (xyxy) multiplied by ``scale``."""
    if scale is None:
        return box
    sx, sy = scale
    return [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy]
