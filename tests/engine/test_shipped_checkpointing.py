"""The shipped demo config checkpoints every epoch, so a killed demo run can be resumed."""

from importlib import resources

from core.config import load_config
from core.engine.builders import build_runner_parts

DEMO = resources.files("plugdet_retinanet") / "configs" / "retinanet_tinynet_fpn_demo_shapes.toml"


def test_demo_config_checkpoints_every_epoch_and_keeps_few():
    cfg = load_config(str(DEMO), ["train_dataloader.dataset.num_images=8",
                                  "val_dataloader.dataset.num_images=8",
                                  "test_dataloader.dataset.num_images=8"])
    hooks = build_runner_parts(cfg, mode="train", config_path=str(DEMO))["hooks"]
    (checkpoint,) = [h for h in hooks if type(h).__name__ == "CheckpointHook"]
    assert checkpoint.interval == 1
    assert 1 <= checkpoint.max_keep <= 3
