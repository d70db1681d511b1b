"""The example plugin, installed, seen and built through plugdet's registries."""

import pytest
import torch

from core.api import ConfigError, DetBatch, DetSample, Instances, PluginManager


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
        assert entry.origin.version == "0.2.0"


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


def test_loss_follows_the_loss_contract_inside_retinanet(registries):
    loss = registries.build("loss", {"type": "ExampleL1Loss"})
    pred, target = torch.ones(4, 2), torch.zeros(4, 2)
    assert loss(pred, target, avg_factor=2).item() == pytest.approx(4.0)  # sum 8 / 2
    assert loss(pred, target, weight=torch.zeros(4, 1)).item() == 0.0
    model = registries.build("detector", {
        "type": "RetinaNet",
        "backbone": {"type": "ExampleConvNet", "widths": [8, 16, 32], "out_indices": [1, 2]},
        "neck": {"type": "ExampleChannelMapper", "in_channels": [16, 32], "out_channels": 8},
        "head": {"type": "RetinaHead", "num_classes": 2, "in_channels": 8, "feat_channels": 8,
                 "stacked_convs": 1, "loss_bbox": {"type": "ExampleL1Loss"},
                 "prior_generator": {"type": "AnchorGenerator", "strides": [4, 8]}},
    })
    gt = Instances(torch.tensor([[4.0, 4.0, 40.0, 36.0]]), torch.tensor([1]))
    sample = DetSample(img_shape=(64, 64), pad_shape=(64, 64), gt=gt)
    losses = model.loss(DetBatch(torch.zeros(1, 3, 64, 64), [sample]))
    assert losses["loss_bbox"].item() > 0 and losses["num_pos"].item() >= 1


def test_bad_config_names_the_key(registries):
    with pytest.raises(ConfigError, match=r"model\.backbone\.widths\[1\]: expected int"):
        registries.build(
            "backbone", {"type": "ExampleConvNet", "widths": [8, "x"]}, "model.backbone"
        )
