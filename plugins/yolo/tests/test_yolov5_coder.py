"""YOLOv5BoxCoder against its formula, and encode as decode's inverse on its range."""

import pytest
import torch
from plugdet_yolo.yolov5_coder import YOLOv5BoxCoder

from core.contracts import BoxCoder, missing_members
from core.errors import ConfigError


def anchors_at(corners: torch.Tensor, wh: torch.Tensor) -> torch.Tensor:
    return torch.cat([corners - wh / 2, corners + wh / 2], dim=-1)


def random_priors(count: int, generator: torch.Generator):
    strides = torch.tensor([8.0, 16.0, 32.0])[torch.randint(0, 3, (count,), generator=generator)]
    corners = torch.randint(0, 20, (count, 2), generator=generator).float() * strides[:, None]
    wh = 5 + torch.rand(count, 2, generator=generator) * 300
    return anchors_at(corners, wh), strides, corners, wh


def test_meets_the_coder_contract():
    assert missing_members(BoxCoder, YOLOv5BoxCoder()) == []
    assert YOLOv5BoxCoder.encode_size == 4


def test_decode_follows_the_formula():
    generator = torch.Generator().manual_seed(0)
    priors, strides, corners, wh = random_priors(50, generator)
    deltas = torch.randn(50, 4, generator=generator) * 3
    boxes = YOLOv5BoxCoder().decode(priors, deltas, strides=strides)
    s = torch.sigmoid(deltas)
    centre = corners + (s[:, :2] * 2 - 0.5) * strides[:, None]
    size = (s[:, 2:] * 2) ** 2 * wh
    torch.testing.assert_close(boxes, torch.cat([centre - size / 2, centre + size / 2], 1))


def test_decode_of_zero_logits_and_clipping():
    # sigmoid(0) = 0.5: centre corner + 0.5 stride (the cell's centre), size = the anchor
    priors = anchors_at(torch.tensor([[16.0, 32.0]]), torch.tensor([[10.0, 20.0]]))
    coder = YOLOv5BoxCoder()
    box = coder.decode(priors, torch.zeros(1, 4), strides=torch.tensor([8.0]))
    assert box.tolist() == [[20 - 5, 36 - 10, 20 + 5, 36 + 10]]
    clipped = coder.decode(priors, torch.zeros(1, 4), max_shape=torch.tensor([[30, 18]]),
                           strides=torch.tensor([8.0]))
    assert clipped.tolist() == [[15, 26, 18, 30]]


def test_encode_inverts_decode_on_its_range():
    generator = torch.Generator().manual_seed(1)
    priors, strides, _, _ = random_priors(200, generator)
    deltas = torch.randn(200, 4, generator=generator) * 2  # sigmoids well inside (0, 1)
    coder = YOLOv5BoxCoder()
    boxes = coder.decode(priors, deltas, strides=strides)
    torch.testing.assert_close(coder.encode(priors, boxes, strides=strides), deltas,
                               atol=2e-3, rtol=1e-3)


def test_encode_outside_the_range_stays_finite():
    priors = anchors_at(torch.tensor([[16.0, 16.0]]), torch.tensor([[10.0, 10.0]]))
    far_and_big = torch.tensor([[100.0, 100.0, 200.0, 200.0]])  # 10 cells away, 10x the anchor
    encoded = YOLOv5BoxCoder().encode(priors, far_and_big, strides=torch.tensor([8.0]))
    assert torch.isfinite(encoded).all() and (encoded > 10).all()


def test_priors_without_strides_are_a_config_error_naming_the_coder():
    anchors = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    with pytest.raises(ConfigError, match="YOLOv5BoxCoder works in units of the stride"):
        YOLOv5BoxCoder().decode(anchors, torch.zeros(1, 4))
