"""A trained detector and its test pipeline, outside the runner (for predict and export)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from core.data.transforms.tta import tta_pipeline
from core.engine.checkpoint import load_checkpoint, load_model_state, model_state_from
from core.engine.class_count import dataset_classes, resolve_num_classes
from core.engine.run_config import TTA_DEFAULTS
from core.errors import ConfigError

#: Where the test pipeline is read from, in this order.
TEST_LOADER_KEYS = ("test_dataloader", "val_dataloader")


def eval_loader_table(cfg: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(key, table)`` of the config's test data loader (the val loader when there is none).

    :raises ConfigError: the config has neither.
    """
    for key in TEST_LOADER_KEYS:
        table = cfg.get(key)
        if isinstance(table, dict) and isinstance(table.get("dataset"), dict):
            return key, table
    raise ConfigError("test_dataloader: missing (and no val_dataloader to fall back to); the "
                      "test pipeline is read from it")


def class_names(cfg: dict[str, Any], num_classes: int) -> tuple[str, ...]:
    """The test dataset's class names, or ``"0" .. "C-1"`` when only its data knows them."""
    key, table = eval_loader_table(cfg)
    classes = dataset_classes(table["dataset"], f"{key}.dataset")
    return tuple(classes) if classes else tuple(str(i) for i in range(num_classes))


def build_test_transforms(cfg: dict[str, Any], tta: bool = False) -> list[Any]:
    """The test pipeline's transforms (with ``tta``, its :func:`tta_pipeline` version using
    the config's ``[tta]`` table)."""
    from core.plugins import get_registries

    key, table = eval_loader_table(cfg)
    pipeline = table["dataset"].get("pipeline", [])
    if not isinstance(pipeline, list):
        raise ConfigError(f"{key}.dataset.pipeline: expected a list of tables")
    if tta:
        settings = {**TTA_DEFAULTS, **cfg.get("tta", {})}
        scales = [tuple(s) for s in settings["scales"]] if settings["scales"] else None
        pipeline = tta_pipeline(pipeline, scales, settings["flip"])
    return get_registries().build_nested("transform", pipeline, f"{key}.dataset.pipeline")


def load_detector(cfg: dict[str, Any], checkpoint: str, device: torch.device) -> nn.Module:
    """Build ``cfg["model"]`` (class count resolved from the datasets), load the weights of
    ``checkpoint`` (``weights_only``) and return it in eval mode on ``device``.

    :raises ConfigError: no model table or a bad one; CheckpointError: a bad checkpoint.
    """
    from core.plugins import get_registries

    cfg = resolve_num_classes(cfg)
    if "model" not in cfg:
        raise ConfigError("model: missing table")
    model = get_registries().build("detector", cfg["model"], path="model")
    load_model_state(model, model_state_from(load_checkpoint(checkpoint), checkpoint), checkpoint)
    return model.to(device).eval()
