import pytest
import torch
from torchvision.models.detection._utils import BoxCoder

from core.errors import ConfigError
from core.models.coders import DeltaXYWHBBoxCoder


def boxes(n, generator):
    xy = torch.rand(n, 2, generator=generator) * 200
    wh = 4 + torch.rand(n, 2, generator=generator) * 150
    return torch.cat([xy, xy + wh], dim=1)


def test_encode_decode_identical_to_torchvision():
    generator = torch.Generator().manual_seed(0)
    priors, targets = boxes(500, generator), boxes(500, generator)
    ours = DeltaXYWHBBoxCoder()
    theirs = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
    assert torch.equal(ours.encode(priors, targets), theirs.encode_single(targets, priors))
    deltas = torch.randn(500, 4, generator=generator)
    assert torch.equal(ours.decode(priors, deltas), theirs.decode_single(deltas, priors))


def test_means_stds_match_torchvision_weights_and_round_trip():
    generator = torch.Generator().manual_seed(1)
    priors, targets = boxes(100, generator), boxes(100, generator)
    coder = DeltaXYWHBBoxCoder(target_stds=(0.1, 0.1, 0.2, 0.2))
    theirs = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    torch.testing.assert_close(coder.encode(priors, targets), theirs.encode_single(targets, priors))
    shifted = DeltaXYWHBBoxCoder(target_means=(0.1, -0.2, 0.0, 0.3), target_stds=(0.5, 2, 1, 1))
    torch.testing.assert_close(shifted.decode(priors, shifted.encode(priors, targets)), targets)


def test_decode_clamps_and_clips_batched():
    coder = DeltaXYWHBBoxCoder()
    priors = torch.tensor([[[10.0, 10.0, 30.0, 30.0]], [[10.0, 10.0, 30.0, 30.0]]])  # (B=2, 1, 4)
    deltas = torch.tensor([[[0.0, 0.0, 100.0, 0.0]], [[2.0, 0.0, 0.0, 0.0]]])
    max_shape = torch.tensor([[[50, 40]], [[50, 40]]])  # (h, w)
    decoded = coder.decode(priors, deltas)
    assert decoded[0, 0, 2] - decoded[0, 0, 0] == pytest.approx(20 * 1000 / 16, rel=1e-5)
    clipped = coder.decode(priors, deltas, max_shape=max_shape)
    assert clipped[0, 0].tolist() == [0.0, 10.0, 40.0, 30.0]
    assert clipped[1, 0].tolist() == [40.0, 10.0, 40.0, 30.0]
    with pytest.raises(ConfigError, match="target_stds"):
        DeltaXYWHBBoxCoder(target_stds=(1.0, 0.0, 1.0, 1.0))
