"""The example plugin, installed, seen and built through plugdet's registries."""

import pytest
import torch

from core.errors import ConfigError
from core.plugins import PluginManager
from core.structures import DetSample


@pytest.fixture(scope="module")
def registries():
    return PluginManager().load().registries


def test_components_are_registered_under_the_distribution(registries):
    for stage, name in [
        ("backbone", "ExampleConvNet"),
        ("neck", "ExampleChannelMapper"),
        ("loss", "ExampleL1Loss"),
        ("transform", "ExampleInvert"),
    ]:
        entry = registries[stage].get(name)
        assert entry.origin.distribution == "plugdet-example"
        assert entry.origin.version == "0.1.0"


def test_backbone_and_neck_build_and_chain(registries):
    backbone = registries.build(
        "backbone", {"type": "ExampleConvNet", "widths": [8, 16, 32], "out_indices": [1, 2]}
    )
    neck = registries.build(
        "neck", {"type": "ExampleChannelMapper", "in_channels": [16, 32], "out_channels": 8}
    )
    features = neck(backbone(torch.zeros(2, 3, 64, 64)))
    assert [tuple(f.shape) for f in features] == [(2, 8, 16, 16), (2, 8, 8, 8)]


def test_loss_and_transform_behave(registries):
    loss = registries.build("loss", {"type": "ExampleL1Loss", "loss_weight": 2.0})
    assert loss(torch.ones(3, 4), torch.zeros(3, 4)).item() == pytest.approx(2.0)
    invert = registries.build("transform", {"type": "ExampleInvert", "prob": 1.0})
    sample = invert(DetSample(image=torch.full((3, 2, 2), 10, dtype=torch.uint8)))
    assert sample.image.unique().tolist() == [245]


def test_bad_config_names_the_key(registries):
    with pytest.raises(ConfigError, match=r"model\.backbone\.widths\[1\]: expected int"):
        registries.build(
            "backbone", {"type": "ExampleConvNet", "widths": [8, "x"]}, "model.backbone"
        )
