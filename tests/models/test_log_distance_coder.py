"""LogDistancePointCoder: a hand-computed box, round trips, clamping and clipping."""

import math

import pytest
import torch

from core.errors import ConfigError
from core.models.coders import LogDistancePointCoder


def test_hand_computed_encode_and_decode():
    """Point (10, 10), stride 8, box [2, 6, 18, 14]: sides 8, 4, 8, 4 px = 1, 0.5, 1, 0.5
    strides -> (0, ln 0.5, 0, ln 0.5); zeros decode to the 2-stride box [2, 2, 18, 18]."""
    coder = LogDistancePointCoder()
    point, stride = torch.tensor([[10.0, 10.0]]), torch.tensor([8.0])
    encoded = coder.encode(point, torch.tensor([[2.0, 6, 18, 14]]), strides=stride)
    assert encoded[0].tolist() == pytest.approx([0.0, math.log(0.5), 0.0, math.log(0.5)])
    assert coder.decode(point, torch.zeros(1, 4), strides=stride)[0].tolist() == [2, 2, 18, 18]


def test_round_trip_on_random_boxes_around_their_points():
    generator = torch.Generator().manual_seed(0)
    points = torch.rand(200, 2, generator=generator) * 100
    strides = torch.tensor([8.0, 16.0, 32.0])[torch.randint(3, (200,), generator=generator)]
    sides = 1 + torch.rand(200, 4, generator=generator) * 50
    boxes = torch.cat([points - sides[:, :2], points + sides[:, 2:]], dim=1)
    coder = LogDistancePointCoder()
    decoded = coder.decode(points, coder.encode(points, boxes, strides), strides=strides)
    torch.testing.assert_close(decoded, boxes)


def test_points_outside_the_box_clamp_and_decoding_clips():
    coder = LogDistancePointCoder()
    encoded = coder.encode(torch.tensor([[30.0, 5.0]]), torch.tensor([[0.0, 0, 20, 10]]),
                           strides=torch.tensor([8.0]))
    assert torch.isfinite(encoded).all() and encoded[0, 2] == pytest.approx(math.log(1e-3))
    clipped = coder.decode(torch.tensor([[4.0, 4.0]]), torch.ones(1, 4) * 3,
                           max_shape=torch.tensor([30.0, 40.0]), strides=torch.tensor([8.0]))
    assert clipped[0].tolist() == [0.0, 0.0, 40.0, 30.0]
    with pytest.raises(ConfigError, match="stride"):
        coder.decode(torch.zeros(1, 2), torch.zeros(1, 4))
    with pytest.raises(ConfigError, match="max_log"):
        LogDistancePointCoder(max_log=0)
