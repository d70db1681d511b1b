"""Sliced inference of one image: tiles through the test pipeline in batches, detections
mapped back to the image and merged.

``predict`` is the detector's ``predict`` on a collated batch (boxes in the pixels of each
sample's ``ori_shape``, clipped); ``prepare`` is the test pipeline on one sample whose
``image`` is set (``LoadImage`` leaves such a sample as it is); ``collate`` makes a
:class:`~core.structures.DetBatch` of prepared samples (the loader's ``collate_fn``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from torch import Tensor

from core.data.slicing.merge import merge_detections
from core.data.slicing.settings import SliceSettings
from core.data.slicing.windows import Window, slice_windows, window_to_image
from core.data.transforms.loading import EXIF_KEY, STRICT_KEY, read_image
from core.errors import DataError
from core.structures import DetBatch, DetSample, Instances

Predict = Callable[[DetBatch], list[Instances]]
Prepare = Callable[[DetSample], DetSample]
Collate = Callable[[list[DetSample]], DetBatch]


def test_prepare(pipeline: Callable[[DetSample, np.random.Generator], Any],
                 seed: int = 0) -> Prepare:
    """``prepare`` running ``pipeline(sample, rng)`` (a dataset's test :class:`Pipeline`)
    with a generator of its own."""
    rng = np.random.default_rng(seed)
    return lambda sample: pipeline(sample, rng)


def image_windows(height: int, width: int, settings: SliceSettings) -> list[Window]:
    """The tiles of an image, then the whole image when ``full_image`` and there are several."""
    windows = slice_windows(height, width, settings.size, settings.overlap)
    if settings.full_image and len(windows) > 1:
        windows.append((0, 0, width, height))
    return windows


def window_sample(image: Tensor, window: Window, img_id: int = 0,
                  img_path: str = "") -> DetSample:
    """A sample holding the window's pixels of ``image`` ``(3, H, W)`` as its own image."""
    x1, y1, x2, y2 = window
    shape = (y2 - y1, x2 - x1)
    return DetSample(img_id=img_id, img_path=img_path, ori_shape=shape, img_shape=shape,
                     pad_shape=shape, image=image[:, y1:y2, x1:x2].contiguous())


def predict_windows(image: Tensor, windows: Sequence[Window], predict: Predict,
                    prepare: Prepare, collate: Collate, batch_size: int,
                    img_id: int = 0, img_path: str = "") -> list[Instances]:
    """Detections of each window of ``image`` ``(3, H, W)`` uint8, in image pixels."""
    found: list[Instances] = []
    for start in range(0, len(windows), batch_size):
        chunk = windows[start:start + batch_size]
        samples = [prepare(window_sample(image, w, img_id, img_path)) for w in chunk]
        preds = predict(collate(samples))
        found += [window_to_image(p.to("cpu"), w) for p, w in zip(preds, chunk, strict=True)]
    return found


def predict_sliced(image: Tensor, settings: SliceSettings, predict: Predict, prepare: Prepare,
                   collate: Collate, img_id: int = 0, img_path: str = "") -> Instances:
    """The merged detections of ``image`` ``(3, H, W)`` uint8: boxes ``(M, 4)`` in its pixels.

    An image that one tile covers is predicted as it is, without merging.
    """
    windows = image_windows(int(image.shape[1]), int(image.shape[2]), settings)
    found = predict_windows(image, windows, predict, prepare, collate, settings.batch_size,
                            img_id, img_path)
    if len(windows) == 1:
        return found[0]
    return merge_detections(Instances.cat(found), settings.merge, settings.match_metric,
                            settings.match_threshold, settings.class_agnostic)


def load_original(sample: DetSample) -> Tensor:
    """The image file of a dataset sample, ``(3, H, W)`` uint8, read with the sample's
    ``strict`` and EXIF options.

    :raises DataError: the sample names no file, or it cannot be read.
    """
    if not sample.img_path:
        raise DataError(f"sample img_id={sample.img_id}: sliced inference reads the image "
                        "file again, and this sample has none")
    image = read_image(sample.img_path, allow_truncated=not sample.meta.get(STRICT_KEY, False),
                       exif_transpose=sample.meta.get(EXIF_KEY, False))
    if tuple(image.shape[1:]) != tuple(sample.ori_shape):
        raise DataError(f"{sample.img_path}: read as {tuple(image.shape[1:])} but the dataset "
                        f"gives {tuple(sample.ori_shape)}")
    return image

