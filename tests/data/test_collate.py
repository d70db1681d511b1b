"""Batching samples: images padded at the right and bottom to one size, pad_shape set."""

import pytest
import torch

from core.structures import DetSample, collate


def sample(height, width, value):
    image = torch.full((3, height, width), value, dtype=torch.uint8)
    shape = (height, width)
    return DetSample(image=image, ori_shape=shape, img_shape=shape, pad_shape=shape)


def test_images_are_padded_right_and_below_to_the_rounded_largest_size():
    batch = collate([sample(5, 9, 7), sample(8, 4, 9), sample(8, 9, 3)], pad_value=-1.0,
                    size_divisor=4)
    assert batch.images.shape == (3, 3, 8, 12) and batch.images.dtype == torch.float32
    expected = torch.full((3, 3, 8, 12), -1.0)
    expected[0, :, :5, :9] = 7
    expected[1, :, :8, :4] = 9
    expected[2, :, :8, :9] = 3
    assert torch.equal(batch.images, expected)
    assert [s.pad_shape for s in batch.samples] == [(8, 12)] * 3
    assert [s.img_shape for s in batch.samples] == [(5, 9), (8, 4), (8, 9)]


def test_equal_sizes_stack_without_padding():
    batch = collate([sample(6, 6, 1), sample(6, 6, 2)], pad_value=-5.0)
    assert batch.images.shape == (2, 3, 6, 6) and (batch.images != -5.0).all()


def test_a_sample_without_image_is_named():
    with pytest.raises(ValueError, match="sample 1"):
        collate([sample(4, 4, 1), DetSample()])
