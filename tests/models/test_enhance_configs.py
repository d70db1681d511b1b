"""The enhance configs: the COCO DCN and ContextBlock RetinaNets load ImageNet ResNet-50 weights
(made here, no download) reporting only the new layers; the enhanced demo trains."""

import logging
from importlib import resources

import pytest
import torch
import torchvision

from core.config import load_config
from core.engine.full_config import load_full_config
from core.engine.runner import Runner
from core.models.enhance import ContextBlock, ModulatedDeformConv2d
from core.plugins import get_registries

CONFIGS = resources.files("plugdet_retinanet") / "configs"
DEMO = "retinanet_tinynet_gcb_fpn_demo_shapes.toml"
ONE_ITERATION = [
    "train_dataloader.dataset.num_images=8",
    "train_dataloader.batch_size=8",
    "val_dataloader.dataset.num_images=4",
    "test_dataloader.dataset.num_images=4",
    "train.max_epochs=1",
    "train.val_interval=1",
    "param_schedulers.0.end=1",
    "param_schedulers.1.end=1",
    "default_hooks.checkpoint.interval=100",
]


@pytest.mark.parametrize(
    ("config", "enhance_type", "num_layers", "new_key"),
    [
        ("retinanet_r50_fpn_dconv_c3-c5_1x_coco.toml", ModulatedDeformConv2d, 4 + 6 + 3,
         "layer3.5.conv2.conv_offset.bias"),
        ("retinanet_r50_fpn_gcb_r16_c3-c5_1x_coco.toml", ContextBlock, 4 + 6 + 3,
         "layer2.0.enhance.after_conv3.0.conv_mask.weight"),
    ],
)
def test_coco_configs_load_resnet50_weights_and_report_the_new_layers(
    tmp_path, caplog, config, enhance_type, num_layers, new_key
):
    reference = torchvision.models.resnet50(weights=None)
    checkpoint = tmp_path / "resnet50.pth"
    torch.save(reference.state_dict(), checkpoint)
    cfg = load_config(str(CONFIGS / config))
    cfg["model"]["backbone"]["init_cfg"]["checkpoint"] = str(checkpoint)
    with caplog.at_level(logging.INFO, logger="plugdet"):
        detector = get_registries().build("detector", cfg["model"], path="model")
    backbone = detector.backbone
    assert sum(isinstance(m, enhance_type) for m in backbone.modules()) == num_layers
    assert "missing keys" not in caplog.text and "unexpected keys" not in caplog.text
    assert "newly initialised" in caplog.text and new_key in caplog.text
    assert torch.equal(backbone.layer4[2].conv2.weight, reference.layer4[2].conv2.weight)
    assert torch.equal(backbone.layer2[0].bn1.running_mean, reference.layer2[0].bn1.running_mean)


def test_enhanced_demo_trains_one_iteration(tmp_path, monkeypatch):
    monkeypatch.setenv("PLUGDET_CACHE", str(tmp_path / "cache"))
    config = str(CONFIGS / DEMO)
    cfg = load_full_config(config, ONE_ITERATION)
    runner = Runner.from_config(cfg, work_dir=str(tmp_path / "run"), config_path=config)
    blocks = [m for m in runner.model.modules() if isinstance(m, ContextBlock)]
    assert len(blocks) == 3
    assert all(not b.channel_add[-1].weight.any() for b in blocks)  # identity at the start
    runner.train()
    # one optimizer step moved the zero-initialised last convs: the blocks now act
    assert all(b.channel_add[-1].weight.abs().sum() > 0 for b in blocks)
    assert runner.message_hub.get_scalar("train/num_pos").current() > 0
    assert torch.isfinite(torch.tensor(runner.message_hub.get_scalar("train/loss").current()))
