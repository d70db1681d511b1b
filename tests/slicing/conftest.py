"""A tiny RetinaNet of the shapes demo with seeded random weights (no training): its scores
spread out, so that merging and ranking have something to work on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "plugins/retinanet/configs/retinanet_tinynet_fpn_demo_shapes.toml"
TINY = ["test_dataloader.dataset.num_images=3", "test_dataloader.batch_size=1",
        "val_dataloader.dataset.num_images=3", "model.head.postprocess.score_thr=0.3",
        "model.head.postprocess.max_per_img=40"]


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Seeded random weights with a spread of scores (the prior bias of the class branch
    would give every anchor about the same score)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith("head.") and parameter.ndim > 1:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
            elif name.startswith("head."):
                parameter.zero_()
    return model.eval()


@pytest.fixture(scope="module")
def shapes_cache(tmp_path_factory):
    """The generated shapes go to a temporary folder."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("cache")
        patch.setenv("PLUGDET_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def tiny_checkpoint(shapes_cache, tmp_path_factory) -> Path:
    """A checkpoint of the randomized demo detector."""
    from core.engine.class_count import resolve_num_classes
    from core.engine.full_config import load_full_config
    from core.plugins import get_registries

    torch.manual_seed(0)
    cfg = resolve_num_classes(load_full_config(str(DEMO), [f"{k}" for k in TINY]))
    model = randomize(get_registries().build("detector", cfg["model"], path="model"))
    path = tmp_path_factory.mktemp("ckpt") / "random.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    return path
