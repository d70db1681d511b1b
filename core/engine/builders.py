"""Builds a runner's parts (model, loaders, metrics, hooks, optimizer, lr schedulers) from a
merged config, and checks a config by building those that need no data
(:func:`check_run_config`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from core.engine import dist
from core.engine.hooks.base import Hook, parse_priority
from core.engine.log_setup import buffered_component_logs
from core.engine.model_wrapper import freeze_prefixes
from core.engine.optim import OptimWrapper
from core.engine.randomness import isolated_rng, set_random_seed
from core.engine.run_config import RunSettings
from core.engine.schedulers import ParamSchedulers
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


def _is_training(mode: str) -> bool:
    """Whether ``mode`` (``"train"`` or ``"test"``) trains."""
    if mode not in ("train", "test"):
        raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
    return mode == "train"


def _run_settings(cfg: dict[str, Any], training: bool, config_path: str | None) -> RunSettings:
    """The run-wide settings, once ``cfg`` is known to have the tables a run needs."""
    settings = RunSettings.from_config(cfg, training=training)
    if "model" not in cfg:
        where = f" in {config_path}" if config_path else ""
        raise ConfigError(f"model: missing table{where}")
    if training and "train_dataloader" not in cfg:
        raise ConfigError("train_dataloader: missing table (needed for training)")
    return settings


def _test_key(cfg: dict[str, Any], settings: RunSettings, training: bool) -> str | None:
    """The loader a run tests on (``None``: a training run without a test at its end)."""
    key = "test_dataloader" if "test_dataloader" in cfg else "val_dataloader"
    if (not training or settings.test_at_end) and key in cfg:
        return key
    if not training:
        raise ConfigError("test_dataloader: missing (and no val_dataloader to fall back to)")
    return None


def build_model(cfg: dict[str, Any], regs: Registries) -> nn.Module:
    """The detector of ``cfg["model"]``, the parameters of the ``freeze`` prefixes frozen."""
    model = regs.build("detector", cfg["model"], path="model")
    freeze = cfg.get("freeze", [])
    if not isinstance(freeze, list):
        raise ConfigError(f"freeze: expected a list of module prefixes, got {freeze!r}")
    freeze_prefixes(model, freeze)
    return model


def _build_evaluators(cfg: dict[str, Any], regs: Registries, training: bool,
                      test_key: str | None, val_classes: Sequence[str],
                      test_classes: Sequence[str]) -> dict[str, list[Any]]:
    """``val_evaluators`` (training with a ``val_dataloader``) and ``test_evaluators``."""
    evaluators = {}
    if training and "val_dataloader" in cfg:
        evaluators["val_evaluators"] = build_metrics(cfg.get("val_evaluator"), "val_evaluator",
                                                     tuple(val_classes), regs)
    if test_key is not None:
        evaluators["test_evaluators"] = build_metrics(
            cfg.get("test_evaluator", cfg.get("val_evaluator")), "test_evaluator",
            tuple(test_classes), regs)
    return evaluators


def build_optimization(model: nn.Module, settings: RunSettings, max_iters: int,
                       scaler: torch.amp.GradScaler | None = None,
                       ) -> tuple[OptimWrapper, ParamSchedulers]:
    """The optimizer (in its wrapper) over ``model``'s parameter groups and the lr schedulers
    of a training run of ``max_iters`` iterations."""
    optim_wrapper = OptimWrapper.from_config(model, settings.optim, scaler)
    schedulers = ParamSchedulers.from_config(
        optim_wrapper.optimizer, settings.param_schedulers,
        settings.max_epochs if settings.by_epoch else None, max_iters)
    return optim_wrapper, schedulers


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

    training = _is_training(mode)
    regs = get_registries()
    settings = _run_settings(cfg, training, config_path)
    set_random_seed(settings.seed, settings.deterministic)
    loaders: dict[str, DataLoader] = {}
    if training:
        loaders["train_dataloader"] = _loader(cfg, "train_dataloader", settings.seed)
        if "val_dataloader" in cfg:
            loaders["val_dataloader"] = _loader(cfg, "val_dataloader", settings.seed)
    test_key = _test_key(cfg, settings, training)
    if test_key is not None:
        augmented = tta or (training and settings.test_tta)
        test_loader = _loader(cfg, test_key, settings.seed, settings.tta if augmented else None)
    classes = {f"{key}.dataset": loader.dataset.classes for key, loader in loaders.items()}
    if test_key is not None:
        classes.setdefault(f"{test_key}.dataset", test_loader.dataset.classes)
    cfg = count_from_datasets(cfg, classes)
    model = build_model(cfg, regs)
    parts: dict[str, Any] = {"cfg": cfg, "settings": settings, "model": model,
                             "hooks": build_hooks(cfg, regs)}
    if training:
        parts["train_loader"] = loaders["train_dataloader"]
        if "val_dataloader" in loaders:
            parts["val_loader"] = loaders["val_dataloader"]
    if test_key is not None:
        parts["test_loader"] = test_loader
    val_classes = loaders["val_dataloader"].dataset.classes if "val_dataloader" in loaders else ()
    test_classes = test_loader.dataset.classes if test_key is not None else ()
    parts.update(_build_evaluators(cfg, regs, training, test_key, val_classes, test_classes))
    return parts


#: Iterations per epoch assumed by :func:`check_run_config` (only the data knows them): large,
#: so that no lr schedule is refused for a window the real number of iterations might fill.
UNKNOWN_ITERS_PER_EPOCH = 1_000_000
#: The class count a model is checked with when only the datasets' data gives it.
UNKNOWN_NUM_CLASSES = 1


def _with_unknown_counts(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` with :data:`UNKNOWN_NUM_CLASSES` for the class counts left to the data."""
    from core.engine.class_count import counts_left_to_data

    keys = counts_left_to_data(cfg)
    if not keys:
        return cfg
    model = dict(cfg["model"])
    for key in keys:
        name = key.split(".", 1)[1]
        model[name] = {**model[name], "num_classes": UNKNOWN_NUM_CLASSES}
    return {**cfg, "model": model}


def check_run_config(cfg: dict[str, Any], *, mode: str = "train",
                     config_path: str | None = None) -> None:
    """Build, with the functions a run of ``mode`` builds with, what needs none of its data,
    and drop it: the run settings, the model (on the CPU, no forward), the hooks, the
    metrics and, for training, the optimizer and the lr schedulers.

    Nothing is read or written: pretrained weights named by an ``init_cfg`` are not loaded
    (the ``init_cfg`` is checked), the random generators are left as they were, and what
    the components log is held back. A class count that only the data gives is taken as
    :data:`UNKNOWN_NUM_CLASSES` (the components are checked; the class outputs' size is the
    data's), the iterations per epoch as :data:`UNKNOWN_ITERS_PER_EPOCH`.

    :raises ConfigError: the error the run would raise for the same value (same message).
    """
    from core.engine.class_count import resolve_num_classes
    from core.models.backbones.pretrained import pretrained_weights_skipped
    from core.plugins import get_registries

    training = _is_training(mode)
    regs = get_registries()
    settings = _run_settings(cfg, training, config_path)
    test_key = _test_key(cfg, settings, training)
    cfg = _with_unknown_counts(resolve_num_classes(cfg, counts_from_data=True))
    with isolated_rng(), pretrained_weights_skipped(), buffered_component_logs():
        model = build_model(cfg, regs)
        build_hooks(cfg, regs)
        _build_evaluators(cfg, regs, training, test_key, (), ())
        if training:
            max_iters = settings.max_iters or settings.max_epochs * UNKNOWN_ITERS_PER_EPOCH
            build_optimization(model, settings, max_iters)
