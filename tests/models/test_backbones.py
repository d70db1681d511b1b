import logging

import pytest
import torch
import torchvision

from core.errors import CheckpointError, ConfigError
from core.models.backbones import ResNet, TinyNet


@pytest.mark.parametrize(("depth", "expansion"), [(18, 1), (50, 4)])
def test_resnet_shapes(depth, expansion):
    model = ResNet(depth=depth, out_indices=(0, 1, 2, 3), base_channels=8).eval()
    outs = model(torch.zeros(1, 3, 65, 97))
    assert [o.shape[1] for o in outs] == [8 * expansion * 2**i for i in range(4)]
    assert model.out_channels == [o.shape[1] for o in outs]
    assert [tuple(o.shape[-2:]) for o in outs] == [(17, 25), (9, 13), (5, 7), (3, 4)]


def test_resnet_builds_only_needed_stages_and_freezes():
    model = ResNet(depth=18, out_indices=(1, 2), frozen_stages=1, norm_eval=True)
    assert not hasattr(model, "layer4")
    model.train()
    assert not any(p.requires_grad for p in model.conv1.parameters())
    assert not any(p.requires_grad for p in model.layer1.parameters())
    assert all(p.requires_grad for p in model.layer2.parameters())
    assert not model.bn1.training and not model.layer2[0].bn1.training  # norm_eval
    unfrozen = ResNet(depth=18, frozen_stages=-1).train()
    assert unfrozen.bn1.training and all(p.requires_grad for p in unfrozen.parameters())


def test_resnet_loads_torchvision_weights_from_local_file(tmp_path, caplog):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": reference.state_dict()}, path)
    with caplog.at_level(logging.WARNING, logger="plugdet"):
        model = ResNet(depth=18, init_cfg={"type": "Pretrained", "checkpoint": str(path)})
    assert torch.equal(model.layer3[1].conv2.weight, reference.layer3[1].conv2.weight)
    assert "missing" not in caplog.text and "unexpected" not in caplog.text  # fc.* is expected

    partial = {k: v for k, v in reference.state_dict().items() if not k.startswith("layer4")}
    partial["extra.weight"] = torch.zeros(1)
    torch.save(partial, path)
    with caplog.at_level(logging.WARNING, logger="plugdet"):
        ResNet(depth=18, init_cfg={"type": "Pretrained", "checkpoint": str(path)})
    assert "missing keys" in caplog.text and "layer4.0.conv1.weight" in caplog.text
    assert "unexpected keys" in caplog.text and "extra.weight" in caplog.text


def test_resnet_pretrained_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        ResNet(depth=18, init_cfg={"type": "Pretrained", "checkpoint": str(tmp_path / "x.pth")})
    path = tmp_path / "other.pth"
    torch.save({"foo.weight": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="no key matches"):
        ResNet(depth=18, init_cfg={"type": "Pretrained", "checkpoint": str(path)})
    with pytest.raises(ConfigError, match=r"init_cfg\.type"):
        ResNet(depth=18, init_cfg={"type": "Kaiming"})
    with pytest.raises(ConfigError, match="depth"):
        ResNet(depth=42)


def test_tiny_net_shapes_and_freezing():
    model = TinyNet(
        widths=(8, 16, 32, 64), depths=(1, 1, 2, 1), out_indices=(1, 2, 3), frozen_stages=1
    ).train()
    outs = model(torch.zeros(2, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 8, 12), (2, 32, 4, 6), (2, 64, 2, 3)]
    assert model.out_channels == [16, 32, 64]
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert not model.stages[0][0][1].training
    with pytest.raises(ConfigError, match="out_indices"):
        TinyNet(out_indices=(4,))


def test_torchvision_scheme_downloads_torchvision_weights_safely(monkeypatch):
    reference = torchvision.models.resnet18(weights=None)
    calls = []

    def fake_download(url, **kwargs):
        calls.append((url, kwargs))
        return reference.state_dict()

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    model = ResNet(
        depth=18, init_cfg={"type": "Pretrained", "checkpoint": "torchvision://resnet18"}
    )
    assert calls[0][0] == torchvision.models.ResNet18_Weights.DEFAULT.url
    assert calls[0][1]["weights_only"] is True
    assert torch.equal(model.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
    with pytest.raises(ConfigError, match="unknown torchvision model"):
        ResNet(depth=18, init_cfg={"type": "Pretrained", "checkpoint": "torchvision://nonet"})
