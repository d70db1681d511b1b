"""Reading image files into samples.

Every image comes out as ``(3, H, W)`` uint8 RGB: 16-bit files (PNG) are scaled from their
0-65535 range to 0-255. A truncated file (the decoder stops short of the end, as with a few
JPEGs of public data sets) is decoded as far as it goes with one warning per file, unless
the dataset is ``strict``. An image whose header announces more pixels than
:func:`~core.data.pixel_limit.max_image_pixels` is refused before decoding. Datasets pass
per-sample options through ``sample.meta``: :data:`STRICT_KEY` (truncated files are errors)
and :data:`EXIF_KEY` (turn the image by its EXIF orientation, see
:mod:`core.data.datasets.image_size`).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps
from torchvision.io import ImageReadMode, decode_image

from core.data.datasets.skips import LOGGER
from core.data.pixel_limit import check_pixel_count, pil_limit_lifted
from core.errors import DataError
from core.structures import DetSample

#: ``sample.meta`` key: the dataset's ``strict`` option (a truncated image is an error).
STRICT_KEY = "strict"
#: ``sample.meta`` key: apply the image's EXIF orientation when decoding.
EXIF_KEY = "exif_transpose"
#: what the decoders report for a file that ends early.
TRUNCATED_MARKERS = ("truncated", "premature end")

_warned_truncated: set[str] = set()


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """A uint8 image; uint16 values are scaled from 0-65535 to 0-255 (rounded)."""
    if image.dtype == torch.uint8:
        return image
    if image.dtype == torch.uint16:
        return ((image.to(torch.int32) * 255 + 32767) // 65535).to(torch.uint8)
    raise DataError(f"unsupported image sample type {image.dtype}")


def _decode_truncated(path: str | Path, content: bytes, exif_transpose: bool) -> torch.Tensor:
    """Decode what a truncated file holds (PIL fills the rest); warns once per file."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pil_limit_lifted(), Image.open(io.BytesIO(content)) as opened:
            image = ImageOps.exif_transpose(opened) if exif_transpose else opened
            pixels = np.array(image.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a decodable image (truncated, {exc})") from exc
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    if str(path) not in _warned_truncated:
        _warned_truncated.add(str(path))
        LOGGER.warning("%s: truncated image file; decoded the part that is there "
                       "(set strict = true to refuse such files)", path)
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()


def read_image(path: str | Path, allow_truncated: bool = True,
               exif_transpose: bool = False) -> torch.Tensor:
    """Decode an image file as RGB. Returns ``(3, H, W)`` uint8.

    :param allow_truncated: decode a file that ends early as far as it goes (one warning
        per file) instead of raising.
    :param exif_transpose: turn the image as its EXIF orientation tag says.
    :raises DataError: the file is missing, unreadable, not a decodable image or, by its
        header, larger than :func:`~core.data.pixel_limit.max_image_pixels`.
    """
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read image file: {exc.strerror or exc}") from exc
    if not content:
        raise DataError(f"{path}: image file is empty")
    check_pixel_count(path, content)
    data = torch.frombuffer(bytearray(content), dtype=torch.uint8)
    try:
        with warnings.catch_warnings():
            # torchvision >= 0.29 announces a move of its decoders to torchcodec
            warnings.simplefilter("ignore", DeprecationWarning)
            image = decode_image(data, mode=ImageReadMode.RGB,
                                 apply_exif_orientation=exif_transpose)
    except RuntimeError as exc:
        truncated = any(marker in str(exc).lower() for marker in TRUNCATED_MARKERS)
        if not truncated:
            raise DataError(f"{path}: not a decodable image ({exc})") from exc
        if not allow_truncated:
            raise DataError(f"{path}: truncated image file ({exc}); refused "
                            f"(strict = true)") from exc
        image = _decode_truncated(path, content, exif_transpose)
    return to_uint8(image)


class LoadImage:
    """Decode ``sample.img_path`` into ``sample.image`` ``(3, H, W)`` uint8 RGB.

    Sets ``ori_shape``, ``img_shape`` and ``pad_shape`` to the decoded size. A sample that
    already carries an image (generated data) is left as it is. ``sample.meta`` options:
    :data:`STRICT_KEY`, :data:`EXIF_KEY` (set by the dataset).

    :param cache_mb: keep up to this many MiB of decoded images in memory (per process: the
        main one with ``num_workers = 0``, else each loader worker) and copy them instead of
        decoding again; images are kept in the order first read until the budget is spent.
        0 (the default) decodes every time. A small set (the raccoon photographs: 35 MiB
        decoded) is decoded once per run instead of once per epoch.
    """

    def __init__(self, cache_mb: int = 0) -> None:
        if not isinstance(cache_mb, int) or isinstance(cache_mb, bool) or cache_mb < 0:
            raise ValueError(f"cache_mb: expected an integer >= 0, got {cache_mb!r}")
        self.cache_bytes = cache_mb << 20
        self._cache: dict[tuple[str, bool], torch.Tensor] = {}
        self._cached_bytes = 0

    def _decoded(self, sample: DetSample) -> torch.Tensor:
        exif = bool(sample.meta.get(EXIF_KEY, False))
        key = (str(sample.img_path), exif)
        cached = self._cache.get(key)
        if cached is not None:
            return cached.clone()  # later transforms may change the image in place
        image = read_image(sample.img_path,
                           allow_truncated=not sample.meta.get(STRICT_KEY, False),
                           exif_transpose=exif)
        if self._cached_bytes + image.numel() <= self.cache_bytes:
            self._cache[key] = image.clone()
            self._cached_bytes += image.numel()
        return image

    def __call__(self, sample: DetSample, rng: np.random.Generator) -> DetSample:
        if sample.image is None:
            image = self._decoded(sample)
            sample.image = image
            shape = (int(image.shape[1]), int(image.shape[2]))
            sample.ori_shape = sample.img_shape = sample.pad_shape = shape
        return sample
