"""Loading, colour distortion and normalization."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from core.data.transforms.loading import LoadImage, read_image
from core.data.transforms.photometric import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Normalize,
    PhotoMetricDistortion,
)
from core.errors import DataError
from core.structures import DetSample


def test_load_image_sets_shapes_and_rgb(tmp_path, rng):
    pixels = np.zeros((20, 30, 3), dtype=np.uint8)
    pixels[..., 0] = 200  # red
    Image.fromarray(pixels).save(tmp_path / "red.png")
    Image.fromarray(pixels[..., 0]).save(tmp_path / "gray.png")
    sample = LoadImage()(DetSample(img_path=str(tmp_path / "red.png")), rng)
    assert sample.image.shape == (3, 20, 30) and sample.image.dtype == torch.uint8
    assert sample.ori_shape == sample.img_shape == sample.pad_shape == (20, 30)
    assert sample.image[0].float().mean() == 200 and sample.image[1:].sum() == 0
    assert read_image(tmp_path / "gray.png").shape == (3, 20, 30)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read image file"),
        (b"", "image file is empty"),
        (b"\xff\xd8\xff\xe0 truncated jpeg", "not a decodable image"),
        (b"plain text", "not a decodable image"),
    ],
)
def test_unreadable_images_raise_data_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "broken.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        read_image(path)
    assert str(path) in str(info.value)


def _sample(image):
    return DetSample(img_id=3, image=image, img_shape=tuple(image.shape[1:]))


def test_normalize_produces_float_chw_and_inverts():
    image = torch.randint(0, 256, (3, 8, 9), dtype=torch.uint8)
    normalize = Normalize()
    out = normalize(_sample(image.clone()), np.random.default_rng(0)).image
    assert out.dtype == torch.float32 and out.shape == (3, 8, 9)
    expected = (image.float() - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(
        IMAGENET_STD
    ).view(3, 1, 1)
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.equal(normalize.denormalize(out), image)


def test_normalize_does_not_modify_a_float_input_in_place():
    image = torch.full((3, 4, 4), 128.0)
    Normalize()(_sample(image), np.random.default_rng(0))
    assert torch.all(image == 128.0)


def test_photometric_distortion_is_seeded_and_changes_only_pixels():
    image = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    distortion = PhotoMetricDistortion(prob=1.0)
    first = distortion(_sample(image.clone()), np.random.default_rng(5))
    second = distortion(_sample(image.clone()), np.random.default_rng(5))
    third = distortion(_sample(image.clone()), np.random.default_rng(6))
    assert first.image.dtype == torch.uint8 and first.image.shape == image.shape
    assert torch.equal(first.image, second.image)
    assert not torch.equal(first.image, image) and not torch.equal(first.image, third.image)
    untouched = PhotoMetricDistortion(prob=0.0)(_sample(image.clone()), np.random.default_rng(5))
    assert torch.equal(untouched.image, image)


def test_photometric_distortion_refuses_normalized_images():
    with pytest.raises(DataError, match="uint8"):
        PhotoMetricDistortion()(_sample(torch.zeros(3, 4, 4)), np.random.default_rng(0))


@pytest.mark.parametrize("seed", range(6))
def test_photometric_distortion_equals_torchvision_operations(seed):
    """Same result as torchvision's adjust_* applied one after the other on a float image
    (torchvision's uint8 path truncates after every operation; this one rounds once)."""
    import torchvision.transforms.v2.functional as TF

    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, 24, 32), dtype=torch.uint8, generator=generator)
    distortion = PhotoMetricDistortion(prob=1.0, hue=0.5)
    out = distortion(_sample(image.clone()), np.random.default_rng(seed)).image
    rng = np.random.default_rng(seed)
    rng.random(4)
    factors = [
        rng.uniform(*distortion.brightness),
        rng.uniform(*distortion.contrast),
        rng.uniform(*distortion.saturation),
        rng.uniform(-0.5, 0.5),
    ]
    expected = TF.adjust_brightness(image.float() / 255, factors[0])
    expected = TF.adjust_contrast(expected, factors[1])
    expected = TF.adjust_saturation(expected, factors[2])
    expected = TF.adjust_hue(expected, factors[3]).mul(255).round()
    difference = (out.float() - expected).abs()
    assert difference.max() <= 1
