"""Builds a runner's parts (model, loaders, metrics, hooks) from a merged config."""

from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader

from core.engine import dist
from core.engine.hooks.base import Hook, parse_priority
from core.engine.model_wrapper import freeze_prefixes
from core.engine.randomness import set_random_seed
from core.engine.run_config import RunSettings
from core.errors import ConfigError
from core.registry import Registries

#: Hooks every run has (key in ``[default_hooks]`` -> default type), in this order.
DEFAULT_HOOKS: dict[str, str] = {
    "logger": "LoggerHook",
    "param_scheduler": "ParamSchedulerHook",
    "evaluation": "EvaluationHook",
    "checkpoint": "CheckpointHook",
}


def _build_hook(regs: Registries, table: dict[str, Any], path: str) -> Hook:
    table = dict(table)
    priority = table.pop("priority", None)
    hook = regs.build("hook", table, path=path)
    if not isinstance(hook, Hook):
        raise ConfigError(f"{path}: {table['type']!r} is not a runner hook "
                          f"(core.engine.hooks.Hook subclass)")
    if priority is not None:
        hook.priority = parse_priority(priority, f"{path}.priority")
    return hook


def build_hooks(cfg: dict[str, Any], regs: Registries) -> list[Hook]:
    """``[default_hooks]`` (each key a table, type optional; ``false`` disables it) then
    ``[[custom_hooks]]``."""
    defaults = cfg.get("default_hooks", {})
    if not isinstance(defaults, dict):
        raise ConfigError(f"default_hooks: expected a table, got {defaults!r}")
    hooks = []
    for key in [*DEFAULT_HOOKS, *(k for k in defaults if k not in DEFAULT_HOOKS)]:
        table = defaults.get(key, {})
        if table is False:
            continue
        if not isinstance(table, dict):
            raise ConfigError(f"default_hooks.{key}: expected a table or false, got {table!r}")
        if "type" not in table and key not in DEFAULT_HOOKS:
            raise ConfigError(f"default_hooks.{key}: missing key 'type'")
        hooks.append(_build_hook(regs, {"type": DEFAULT_HOOKS.get(key), **table},
                                 f"default_hooks.{key}"))
    custom = cfg.get("custom_hooks", [])
    if not isinstance(custom, list):
        raise ConfigError(f"custom_hooks: expected a list of tables, got {custom!r}")
    for index, table in enumerate(custom):
        if not isinstance(table, dict):
            raise ConfigError(f"custom_hooks[{index}]: expected a table, got {table!r}")
        hooks.append(_build_hook(regs, table, f"custom_hooks[{index}]"))
    return hooks


def build_metrics(cfg: dict[str, Any] | list[dict[str, Any]] | None, path: str,
                  classes: tuple[str, ...], regs: Registries) -> list[Any]:
    """One metric per table (a table or a list of tables), with ``dataset_meta`` set."""
    if cfg is None:
        return []
    tables = cfg if isinstance(cfg, list) else [cfg]
    metrics = []
    for index, table in enumerate(tables):
        metric = regs.build("metric", table,
                            path=f"{path}[{index}]" if isinstance(cfg, list) else path)
        metric.dataset_meta = {"classes": tuple(classes)}
        metrics.append(metric)
    return metrics


def _loader(cfg: dict[str, Any], key: str, seed: int, tta: dict[str, Any] | None = None,
            ) -> DataLoader:
    from core.data.loader import build_dataloader

    table = cfg[key]
    if not isinstance(table, dict):
        raise ConfigError(f"{key}: expected a table, got {table!r}")
    if tta is not None:
        from core.data.transforms.tta import tta_pipeline

        dataset = dict(table.get("dataset", {}))
        scales = [tuple(s) for s in tta["scales"]] if tta["scales"] else None
        dataset["pipeline"] = tta_pipeline(dataset.get("pipeline", []), scales, tta["flip"])
        table = {**table, "dataset": dataset}
    return build_dataloader(table, path=key, seed=seed, distributed=dist.is_distributed())


def build_runner_parts(cfg: dict[str, Any], *, mode: str, config_path: str | None = None,
                       tta: bool = False) -> dict[str, Any]:
    """Keyword arguments of :class:`~core.engine.runner.Runner` for ``mode`` train or test.

    Components come from the registries of the loaded plugins. The datasets are built before
    the model: the heads' class counts are checked against their classes (and a count left
    out is taken from them, see :func:`~core.engine.class_count.count_from_datasets`); the
    ``cfg`` returned among the parts has those counts.
    """
    from core.engine.class_count import count_from_datasets
    from core.plugins import get_registries

    if mode not in ("train", "test"):
        raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
    regs = get_registries()
    training = mode == "train"
    settings = RunSettings.from_config(cfg, training=training)
    set_random_seed(settings.seed, settings.deterministic)
    if "model" not in cfg:
        where = f" in {config_path}" if config_path else ""
        raise ConfigError(f"model: missing table{where}")
    loaders: dict[str, DataLoader] = {}
    if training:
        if "train_dataloader" not in cfg:
            raise ConfigError("train_dataloader: missing table (needed for training)")
        loaders["train_dataloader"] = _loader(cfg, "train_dataloader", settings.seed)
        if "val_dataloader" in cfg:
            loaders["val_dataloader"] = _loader(cfg, "val_dataloader", settings.seed)
    test_key = "test_dataloader" if "test_dataloader" in cfg else "val_dataloader"
    testing = (not training or settings.test_at_end) and test_key in cfg
    if testing:
        augmented = tta or (training and settings.test_tta)
        test_loader = _loader(cfg, test_key, settings.seed, settings.tta if augmented else None)
    elif not training:
        raise ConfigError("test_dataloader: missing (and no val_dataloader to fall back to)")
    classes = {f"{key}.dataset": loader.dataset.classes for key, loader in loaders.items()}
    if testing:
        classes.setdefault(f"{test_key}.dataset", test_loader.dataset.classes)
    cfg = count_from_datasets(cfg, classes)
    model = regs.build("detector", cfg["model"], path="model")
    freeze = cfg.get("freeze", [])
    if not isinstance(freeze, list):
        raise ConfigError(f"freeze: expected a list of module prefixes, got {freeze!r}")
    freeze_prefixes(model, freeze)
    parts: dict[str, Any] = {"cfg": cfg, "settings": settings, "model": model,
                             "hooks": build_hooks(cfg, regs)}
    if training:
        parts["train_loader"] = loaders["train_dataloader"]
        if "val_dataloader" in loaders:
            val_loader = loaders["val_dataloader"]
            parts["val_loader"] = val_loader
            parts["val_evaluators"] = build_metrics(cfg.get("val_evaluator"), "val_evaluator",
                                                    val_loader.dataset.classes, regs)
    if testing:
        parts["test_loader"] = test_loader
        parts["test_evaluators"] = build_metrics(
            cfg.get("test_evaluator", cfg.get("val_evaluator")), "test_evaluator",
            test_loader.dataset.classes, regs)
    return parts
