"""Point priors: cell centres per level, and their Priors (strides, level sizes)."""

import pytest
import torch

from core.contracts import Priors
from core.models.priors import PointGenerator


def test_points_are_cell_centres_row_major():
    generator = PointGenerator(strides=[8, 16], offset=0.5)
    fine, coarse = generator.grid_priors([(2, 3), (1, 2)])
    assert fine.tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]
    assert coarse.tolist() == [[8, 8], [24, 8]]
    priors = Priors.from_levels([fine, coarse], generator.strides)
    assert priors.is_points and priors.level_sizes == (6, 2)
    assert priors.strides.tolist() == [8] * 6 + [16] * 2
    assert priors.level_of().tolist() == [0] * 6 + [1] * 2
    assert generator.num_base_priors == [1, 1]


def test_offset_zero_is_the_corner_and_levels_must_match():
    (level,) = PointGenerator(strides=[32], offset=0.0).grid_priors([(1, 2)])
    assert level.tolist() == [[0, 0], [32, 0]]
    with pytest.raises(ValueError, match="2 strides but got 1"):
        PointGenerator(strides=[8, 16]).grid_priors([(2, 2)])


def test_anchor_priors_carry_centres():
    boxes = torch.tensor([[0.0, 0, 10, 20], [4, 4, 8, 8]])
    priors = Priors.from_levels([boxes], [8])
    assert priors.points.tolist() == [[5, 10], [6, 6]]
    assert not priors.per_image and priors.num_priors == 2
