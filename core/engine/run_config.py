"""The engine's part of the config schema: top-level keys, ``[train]`` and ``[tta]``.

Every other table (model, data, metrics, hooks, vis backends) is checked by the component
registry that builds it.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from core.data.slicing.settings import SliceSettings
from core.errors import ConfigError

TOP_LEVEL_KEYS = {
    "_base_", "default_scope", "seed", "deterministic", "amp", "flush_denormal", "load_from",
    "load_from_class_map", "device", "sync_bn",
    "find_unused_parameters", "model", "train_dataloader", "val_dataloader", "test_dataloader",
    "val_evaluator", "test_evaluator", "optim", "param_schedulers", "train", "freeze",
    "default_hooks", "custom_hooks", "vis_backends", "tta", "data", "slice",
}
TRAIN_DEFAULTS: dict[str, Any] = {"by_epoch": True, "max_epochs": 12, "max_iters": None,
                                  "val_interval": 1, "test_at_end": False, "test_tta": False}
TTA_DEFAULTS: dict[str, Any] = {"scales": None, "flip": True, "iou_thr": 0.5,
                                "max_per_img": 100}
DEFAULT_VIS_BACKENDS = [{"type": "LocalVisBackend"}]


def _expect(value: Any, kind: type | tuple[type, ...], path: str, optional: bool = False) -> Any:
    if optional and value is None:
        return value
    bad_bool = isinstance(value, bool) and kind in (int, float, (int, float))
    if bad_bool or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{path}: expected {names}, got {value!r}")
    return value


def _table(cfg: dict[str, Any], key: str, defaults: dict[str, Any]) -> dict[str, Any]:
    table = _expect(cfg.get(key, {}), dict, key)
    unknown = sorted(set(table) - set(defaults))
    if unknown:
        raise ConfigError(f"{key}: unknown keys {unknown}; allowed: {sorted(defaults)}")
    return {**defaults, **table}


def class_map(cfg: dict[str, Any], load_from: str) -> dict[str, str]:
    """``load_from_class_map``: dataset class -> the checkpoint's name of it, for the class
    rows of a ``load_from`` with other class names (see ``docs/pretrained.md``)."""
    table = _expect(cfg.get("load_from_class_map", {}), dict, "load_from_class_map")
    for key, value in table.items():
        _expect(value, str, f"load_from_class_map.{key}")
    if table and not load_from:
        raise ConfigError("load_from_class_map: maps the classes of a load_from checkpoint, "
                          "but load_from is not set")
    return dict(table)


def check_top_level(cfg: dict[str, Any]) -> None:
    """Reject unknown top-level keys (a typo would otherwise be silently ignored)."""
    unknown = sorted(set(cfg) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(f"unknown top-level config keys {unknown}; known: "
                          f"{sorted(TOP_LEVEL_KEYS)}")


def resolve_device(name: str) -> torch.device:
    """``"auto"`` (CUDA when available, the rank's GPU), ``"cpu"`` or ``"cuda"``."""
    from core.engine.dist import default_device

    if name == "auto":
        return default_device()
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device: 'cuda' requested but CUDA is not available")
        return default_device()
    raise ConfigError(f"device: expected 'auto', 'cpu' or 'cuda', got {name!r}")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX): there bf16 autocast
    speeds convolutions up; elsewhere it is emulated and many times slower than float32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def flush_denormal_of(cfg: dict[str, Any]) -> bool:
    """The config's ``flush_denormal`` (default true; :mod:`core.engine.cpu_tuning`)."""
    return _expect(cfg.get("flush_denormal", True), bool, "flush_denormal")


def resolve_amp(value: Any, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for the config's ``amp``: ``true`` (fp16 on CUDA, bf16 on a CPU),
    ``false`` (none) or ``"auto"`` (fp16 on CUDA, bf16 on a CPU with native bf16, else
    none)."""
    if value == "auto":
        value = device.type == "cuda" or cpu_has_native_bf16()
    if not isinstance(value, bool):
        raise ConfigError(f"amp: expected bool or \"auto\", got {value!r} "
                          f"({type(value).__name__})")
    if not value:
        return None
    return torch.float16 if device.type == "cuda" else torch.bfloat16


@attrs.frozen
class RunSettings:
    """Run-wide options read from the top level of the config.

    :ivar amp_dtype: autocast dtype (fp16 on CUDA, bf16 on CPU) or ``None`` without AMP.
    :ivar flush_denormal: subnormal floats become 0 on the CPU (:mod:`core.engine.cpu_tuning`).
    :ivar load_from_class_map: dataset class -> checkpoint class for ``load_from``.
    :ivar slice: sliced validation and testing (the ``[slice]`` table), or ``None``.
    """

    device: torch.device
    seed: int = 0
    deterministic: bool = False
    amp_dtype: torch.dtype | None = None
    flush_denormal: bool = True
    load_from: str = ""
    load_from_class_map: dict[str, str] = attrs.field(factory=dict)
    by_epoch: bool = True
    max_epochs: int = 12
    max_iters: int | None = None
    val_interval: int = 1
    test_at_end: bool = False
    test_tta: bool = False
    optim: dict[str, Any] = attrs.field(factory=dict)
    param_schedulers: list[dict[str, Any]] = attrs.field(factory=list)
    sync_bn: bool = False
    find_unused_parameters: bool = False
    vis_backends: list[dict[str, Any]] = attrs.field(factory=lambda: list(DEFAULT_VIS_BACKENDS))
    tta: dict[str, Any] = attrs.field(factory=lambda: dict(TTA_DEFAULTS))
    slice: SliceSettings | None = None

    @classmethod
    def from_config(cls, cfg: dict[str, Any], training: bool) -> RunSettings:
        """Validate and read the top-level keys; ``training`` requires ``[optim]``."""
        check_top_level(cfg)
        train = _table(cfg, "train", TRAIN_DEFAULTS)
        by_epoch = _expect(train["by_epoch"], bool, "train.by_epoch")
        max_iters = _expect(train["max_iters"], int, "train.max_iters", optional=True)
        if training and not by_epoch and not max_iters:
            raise ConfigError("train.max_iters: required when train.by_epoch = false")
        if training and by_epoch and max_iters is not None:
            raise ConfigError("train.max_iters: only for train.by_epoch = false (an "
                              "epoch-based run is limited by train.max_epochs)")
        max_epochs = _expect(train["max_epochs"], int, "train.max_epochs")
        if max_epochs < 1 or (max_iters is not None and max_iters < 1):
            raise ConfigError("train: max_epochs and max_iters must be >= 1")
        val_interval = _expect(train["val_interval"], int, "train.val_interval")
        if val_interval < 0:
            raise ConfigError(f"train.val_interval: expected >= 0 (0 disables validation), "
                              f"got {val_interval}")
        test_at_end = _expect(train["test_at_end"], bool, "train.test_at_end")
        test_tta = _expect(train["test_tta"], bool, "train.test_tta")
        if test_tta and not test_at_end:
            raise ConfigError("train.test_tta: the end-of-training test it augments needs "
                              "train.test_at_end = true")
        if training and "optim" not in cfg:
            raise ConfigError("optim: missing table (e.g. [optim] type = \"SGD\", lr = 0.01)")
        device = resolve_device(_expect(cfg.get("device", "auto"), str, "device"))
        amp_dtype = resolve_amp(cfg.get("amp", False), device)
        load_from = _expect(cfg.get("load_from", ""), str, "load_from")
        schedulers = _expect(cfg.get("param_schedulers", []), list, "param_schedulers")
        if not by_epoch:
            for index, entry in enumerate(schedulers):
                if entry.get("by_epoch", True):
                    raise ConfigError(f"param_schedulers[{index}].by_epoch: must be false in an "
                                      "iteration-based run (train.by_epoch = false)")
        return cls(
            device=device,
            seed=_expect(cfg.get("seed", 0), int, "seed"),
            deterministic=_expect(cfg.get("deterministic", False), bool, "deterministic"),
            amp_dtype=amp_dtype,
            flush_denormal=flush_denormal_of(cfg),
            load_from=load_from,
            load_from_class_map=class_map(cfg, load_from),
            by_epoch=by_epoch,
            max_epochs=max_epochs,
            max_iters=None if by_epoch else max_iters,
            val_interval=val_interval,
            test_at_end=test_at_end,
            test_tta=test_tta,
            optim=_expect(cfg.get("optim", {}), dict, "optim"),
            param_schedulers=schedulers,
            sync_bn=_expect(cfg.get("sync_bn", False), bool, "sync_bn"),
            find_unused_parameters=_expect(cfg.get("find_unused_parameters", False), bool,
                                           "find_unused_parameters"),
            vis_backends=_expect(cfg.get("vis_backends", DEFAULT_VIS_BACKENDS), list,
                                 "vis_backends"),
            tta=_table(cfg, "tta", TTA_DEFAULTS),
            slice=SliceSettings.from_table(cfg["slice"]) if "slice" in cfg else None,
        )
