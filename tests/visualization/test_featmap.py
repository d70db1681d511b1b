"""draw_featmap on real backbone features: sizes per mode, overlays and argument errors."""

import numpy as np
import pytest
import torch

from core.models.backbones.resnet import ResNet
from core.visualization import Visualizer, draw_featmap


@pytest.fixture(scope="module")
def featmap() -> torch.Tensor:
    torch.manual_seed(0)
    backbone = ResNet(depth=18, base_channels=8, out_indices=(1,)).eval()
    with torch.no_grad():
        (feat,) = backbone(torch.rand(1, 3, 64, 96))
    assert feat.shape == (1, 16, 8, 12)
    return feat[0]


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)


@pytest.mark.parametrize("reduction", ["squeeze_mean", "select_max"])
def test_reductions_give_one_map_of_the_requested_size(featmap, image, reduction):
    assert draw_featmap(featmap, channel_reduction=reduction).shape == (8, 12, 3)
    overlaid = draw_featmap(featmap, image, channel_reduction=reduction)
    assert overlaid.shape == (64, 96, 3) and overlaid.dtype == np.uint8
    resized = draw_featmap(featmap, image, channel_reduction=reduction, resize_shape=(32, 40))
    assert resized.shape == (32, 40, 3)


def test_mean_and_max_reductions_differ(featmap):
    mean = draw_featmap(featmap, channel_reduction="squeeze_mean")
    best = draw_featmap(featmap, channel_reduction="select_max")
    assert not np.array_equal(mean, best)


def test_select_max_shows_the_strongest_channel(featmap):
    strongest = int(featmap.flatten(1).sum(1).argmax())
    expected = draw_featmap(featmap[strongest : strongest + 1], channel_reduction=None, topk=-1)
    assert np.array_equal(draw_featmap(featmap, channel_reduction="select_max"), expected)


def test_topk_tiles_are_laid_out_in_the_arrangement(featmap, image):
    grid = draw_featmap(featmap, image, channel_reduction=None, topk=6, arrangement=(2, 3))
    assert grid.shape == (2 * 64, 3 * 96, 3)
    default = draw_featmap(featmap, channel_reduction=None)  # topk 10 in the (2, 5) grid
    assert default.shape == (2 * 8, 5 * 12, 3)
    one_row = draw_featmap(featmap, channel_reduction=None, topk=4, arrangement=(1, 5))
    assert one_row.shape == (8, 4 * 12, 3)
    tiles = [one_row[:, i * 12 : (i + 1) * 12] for i in range(4)]
    assert not any(np.array_equal(tiles[0], t) for t in tiles[1:])  # distinct channels


def test_alpha_zero_returns_the_image_and_alpha_one_the_heat_map(featmap, image):
    assert np.array_equal(draw_featmap(featmap, image, alpha=0.0), image)
    heat = draw_featmap(featmap, resize_shape=(64, 96))
    assert np.array_equal(draw_featmap(featmap, image, alpha=1.0), heat)


def test_topk_minus_one_needs_one_or_three_channels(featmap):
    assert draw_featmap(featmap[:3], channel_reduction=None, topk=-1).shape == (8, 12, 3)
    assert draw_featmap(featmap[:1], channel_reduction=None, topk=-1).shape == (8, 12, 3)
    with pytest.raises(ValueError, match="needs 1 or 3 channels, got 16"):
        draw_featmap(featmap, channel_reduction=None, topk=-1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channel_reduction": "max"}, "channel_reduction must be one of"),
        ({"topk": 4}, "topk=4 only applies without channel reduction"),
        ({"channel_reduction": None, "topk": 0}, "topk must be a positive int or -1"),
        ({"channel_reduction": None, "topk": 8, "arrangement": (2, 3)}, "holds 6 tiles"),
        ({"resize_shape": (0, 4)}, "resize_shape"),
        ({"alpha": 1.5}, "alpha"),
    ],
)
def test_bad_arguments_raise_clear_errors(featmap, kwargs, message):
    with pytest.raises(ValueError, match=message):
        draw_featmap(featmap, **kwargs)


def test_batched_featmap_is_rejected_with_a_hint(featmap):
    with pytest.raises(ValueError, match=r"\(C, H, W\).*one image of a batch"):
        draw_featmap(featmap[None])


def test_visualizer_exposes_draw_featmap(featmap):
    assert Visualizer.draw_featmap(featmap).shape == (8, 12, 3)
