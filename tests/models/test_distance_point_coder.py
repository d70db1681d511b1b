"""DistancePointBBoxCoder: hand-computed distances, stride units, round trip and clipping."""

import torch

from core.contracts import BoxCoder, missing_members
from core.models.coders import DistancePointBBoxCoder


def test_hand_computed_encode_and_decode():
    coder = DistancePointBBoxCoder()
    assert missing_members(BoxCoder, coder) == []
    points = torch.tensor([[20.0, 30.0], [0.0, 0.0]])
    boxes = torch.tensor([[10.0, 20.0, 50.0, 40.0], [4.0, 8.0, 12.0, 16.0]])
    assert coder.encode(points, boxes).tolist() == [[10, 10, 30, 10], [-4, -8, 12, 16]]
    strides = torch.tensor([10.0, 4.0])
    assert coder.encode(points, boxes, strides).tolist() == [[1, 1, 3, 1], [-1, -2, 3, 4]]
    assert coder.decode(points, torch.tensor([[1.0, 1, 3, 1]] * 2), strides=strides).tolist() == [
        [10, 20, 50, 40], [-4, -4, 12, 4]]


def test_round_trip_and_clipping_on_random_boxes():
    generator = torch.Generator().manual_seed(0)
    points = torch.rand(2, 50, 2, generator=generator) * 100
    boxes = torch.cat([points - torch.rand(2, 50, 2, generator=generator) * 30,
                       points + torch.rand(2, 50, 2, generator=generator) * 30], dim=-1)
    strides = torch.tensor([8.0, 16.0, 32.0, 8.0, 16.0]).repeat(10)[None].expand(2, -1)
    coder = DistancePointBBoxCoder()
    encoded = coder.encode(points, boxes, strides)
    assert torch.allclose(coder.decode(points, encoded, strides=strides), boxes, atol=1e-4)
    max_shape = torch.tensor([[60.0, 80.0], [100.0, 40.0]])[:, None, :]
    clipped = coder.decode(points, encoded, max_shape=max_shape, strides=strides)
    assert torch.equal(clipped[..., 0::2], boxes[..., 0::2].clamp(min=0).minimum(
        max_shape[..., 1:2]))
    assert torch.equal(clipped[..., 1::2], boxes[..., 1::2].clamp(min=0).minimum(
        max_shape[..., 0:1]))
