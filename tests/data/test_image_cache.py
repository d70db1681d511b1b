"""``LoadImage(cache_mb=...)``: decoded images kept in memory within a budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from core.data.transforms.loading import LoadImage
from core.errors import DataError
from core.structures import DetSample

RNG = np.random.default_rng(0)


def _png(path, height=40, width=60):
    Image.fromarray(RNG.integers(0, 255, (height, width, 3)).astype(np.uint8)).save(path)
    return path


def _load(transform, path):
    return transform(DetSample(img_path=str(path)), np.random.default_rng(0))


def test_cached_image_is_read_once_and_equal_to_a_fresh_decode(tmp_path):
    path = _png(tmp_path / "a.png")
    cached = LoadImage(cache_mb=1)
    first = _load(cached, path)
    fresh = _load(LoadImage(), path)
    path.unlink()  # only the cache can answer now
    second = _load(cached, path)
    assert torch.equal(first.image, fresh.image) and torch.equal(second.image, fresh.image)
    assert second.ori_shape == second.img_shape == second.pad_shape == (40, 60)


def test_changing_a_loaded_image_in_place_leaves_the_cache_alone(tmp_path):
    path = _png(tmp_path / "a.png")
    cached = LoadImage(cache_mb=1)
    first = _load(cached, path)
    original = first.image.clone()
    first.image.zero_()  # as an in-place photometric transform would
    assert torch.equal(_load(cached, path).image, original)


def test_images_beyond_the_budget_are_decoded_every_time(tmp_path):
    # 1 MiB holds one 600x400 image (720,000 bytes) but not two
    first, second = _png(tmp_path / "a.png", 400, 600), _png(tmp_path / "b.png", 400, 600)
    cached = LoadImage(cache_mb=1)
    _load(cached, first)
    _load(cached, second)
    first.unlink()
    second.unlink()
    assert _load(cached, first).image.shape == (3, 400, 600)
    with pytest.raises(DataError, match=r"b\.png"):
        _load(cached, second)


def test_no_cache_by_default(tmp_path):
    path = _png(tmp_path / "a.png")
    loader = LoadImage()
    _load(loader, path)
    path.unlink()
    with pytest.raises(DataError, match=r"a\.png"):
        _load(loader, path)


@pytest.mark.parametrize("value", [-1, 1.5, True, "64"])
def test_cache_budget_must_be_a_non_negative_integer(value):
    with pytest.raises(ValueError, match="cache_mb"):
        LoadImage(cache_mb=value)
