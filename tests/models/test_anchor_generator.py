import math

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator as TVAnchorGenerator
from torchvision.models.detection.image_list import ImageList

from core.errors import ConfigError
from core.models.priors import AnchorGenerator

STRIDES = [8, 16, 32, 64, 128]


def test_identical_to_torchvision_anchors():
    sizes = [[x, int(x * 2 ** (1 / 3)), int(x * 2 ** (2 / 3))] for x in (32, 64, 128, 256, 512)]
    ours = AnchorGenerator(strides=STRIDES, sizes=sizes, round_base_anchors=True)
    theirs = TVAnchorGenerator(tuple(tuple(s) for s in sizes), ((0.5, 1.0, 2.0),) * 5)
    image = torch.zeros(1, 3, 256, 384)
    featmap_sizes = [(256 // s, 384 // s) for s in STRIDES]
    feats = [torch.zeros(1, 1, h, w) for h, w in featmap_sizes]
    expected = theirs(ImageList(image, [(256, 384)]), feats)[0]
    got = torch.cat(ours.grid_priors(featmap_sizes))
    assert torch.equal(got, expected)


def test_octave_scales_and_layout():
    generator = AnchorGenerator(
        strides=[8], ratios=[0.5, 1.0, 2.0], octave_base_scale=4, scales_per_octave=3
    )
    anchors = generator.grid_priors([(2, 3)])[0]
    assert anchors.shape == (2 * 3 * 9, 4)
    sides = [32 * 2 ** (k / 3) for k in range(3)]
    cell = anchors[:9]  # first cell, ratio-major then size
    widths, heights = cell[:, 2] - cell[:, 0], cell[:, 3] - cell[:, 1]
    areas = widths * heights
    for r, ratio in enumerate([0.5, 1.0, 2.0]):
        for s, side in enumerate(sides):
            index = r * 3 + s
            assert math.isclose(areas[index], side**2, rel_tol=1e-5)
            assert math.isclose(heights[index] / widths[index], ratio, rel_tol=1e-5)
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    # cell (row 1, col 2) is the 6th cell: centre (2 * 8, 1 * 8)
    assert torch.allclose(centres[5 * 9 : 6 * 9], torch.tensor([16.0, 8.0]).expand(9, 2))


def test_center_offset_and_errors():
    generator = AnchorGenerator(strides=[16], ratios=[1.0], scales_per_octave=1, center_offset=0.5)
    anchors = generator.grid_priors([(1, 1)])[0]
    assert torch.allclose((anchors[0, :2] + anchors[0, 2:]) / 2, torch.tensor([8.0, 8.0]))
    with pytest.raises(ValueError, match="2 maps"):
        AnchorGenerator(strides=[8]).grid_priors([(2, 2), (1, 1)])
    with pytest.raises(ConfigError, match="sizes"):
        AnchorGenerator(strides=[8, 16], sizes=[[32.0]])


def test_explicit_base_sizes_on_cell_corners():
    """YOLO-style anchors: given (w, h) pairs per level, centred on the cells' corners."""
    generator = AnchorGenerator(strides=[8, 16], base_sizes=[[[10, 13], [16, 30]], [[30, 61]]])
    assert generator.num_base_priors == [2, 1]
    fine, coarse = generator.grid_priors([(2, 3), (1, 2)])
    assert fine.shape == (2 * 3 * 2, 4) and coarse.shape == (2, 4)
    # cell (y=1, x=2) of the fine level: corner (16, 8); its second anchor is 16 x 30
    assert fine[(1 * 3 + 2) * 2 + 1].tolist() == [16 - 8, 8 - 15, 16 + 8, 8 + 15]
    assert coarse[1].tolist() == [16 - 15, -30.5, 16 + 15, 30.5]
    with pytest.raises(ConfigError, match="base_sizes"):
        AnchorGenerator(strides=[8, 16], base_sizes=[[[10, 13]]])
    with pytest.raises(ConfigError, match=r"base_sizes\[0\]"):
        AnchorGenerator(strides=[8], base_sizes=[[[10, 0]]])
