"""draw_featmap on the demo model's FPN features: sizes per mode, overlays, argument errors."""

from importlib import resources

import numpy as np
import pytest
import torch

from core.config import load_config
from core.plugins import get_registries
from core.visualization import Visualizer, draw_featmap

DEMO_CONFIG = resources.files("plugdet_retinanet") / "configs" / (
    "retinanet_tinynet_fpn_demo_shapes.toml")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A 64x96 picture: noise with a bright rectangle."""
    pixels = np.random.default_rng(0).integers(0, 120, (64, 96, 3), dtype=np.uint8)
    pixels[16:48, 20:60] = (230, 200, 40)
    return pixels


@pytest.fixture(scope="module")
def featmap(image) -> torch.Tensor:
    """The finest FPN level (stride 8) of the demo RetinaNet: ``(C, 8, 12)``."""
    torch.manual_seed(0)
    cfg = load_config(str(DEMO_CONFIG))
    detector = get_registries().build("detector", cfg["model"], path="model").eval()
    images = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        feats = detector.extract_feat((images - 0.45) / 0.25)
    assert feats[0].shape == (1, cfg["model"]["neck"]["out_channels"], 8, 12)
    assert feats[0].shape[1] not in (1, 3)  # topk=-1 must refuse it
    return feats[0][0]


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
    with pytest.raises(ValueError, match=f"needs 1 or 3 channels, got {len(featmap)}"):
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
