"""Reading image files into samples."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_image

from core.errors import DataError
from core.structures import DetSample


def read_image(path: str | Path) -> torch.Tensor:
    """Decode an image file as RGB. Returns ``(3, H, W)`` uint8.

    :raises DataError: the file is missing, unreadable or not a decodable image.
    """
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read image file: {exc.strerror or exc}") from exc
    if not content:
        raise DataError(f"{path}: image file is empty")
    data = torch.frombuffer(bytearray(content), dtype=torch.uint8)
    try:
        with warnings.catch_warnings():
            # torchvision >= 0.29 announces a move of its decoders to torchcodec
            warnings.simplefilter("ignore", DeprecationWarning)
            return decode_image(data, mode=ImageReadMode.RGB)
    except RuntimeError as exc:
        raise DataError(f"{path}: not a decodable image ({exc})") from exc


class LoadImage:
    """Decode ``sample.img_path`` into ``sample.image`` ``(3, H, W)`` uint8 RGB.

    Sets ``ori_shape``, ``img_shape`` and ``pad_shape`` to the decoded size. A sample that
    already carries an image (generated data) is left as it is.
    """

    def __call__(self, sample: DetSample, rng: np.random.Generator) -> DetSample:
        if sample.image is None:
            image = read_image(sample.img_path)
            sample.image = image
            shape = (int(image.shape[1]), int(image.shape[2]))
            sample.ori_shape = sample.img_shape = sample.pad_shape = shape
        return sample
