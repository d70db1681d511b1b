"""Optimizers from ``torch.optim`` by name, per-parameter options, clipping and accumulation.

Config (``[optim]``)::

    type = "SGD"                 # any torch.optim optimizer class
    lr = 0.01                    # other keys go to the optimizer's constructor
    momentum = 0.9
    weight_decay = 1e-4
    accumulate = 1               # optimizer step every N iterations
    clip_grad = {max_norm = 35.0, norm_type = 2.0}
    paramwise = {norm_decay_mult = 0.0, bias_decay_mult = 0.0,
                 custom_keys = {"backbone" = {lr_mult = 0.1, decay_mult = 1.0}}}
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn

from core.errors import ConfigError

NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm,
               nn.modules.instancenorm._InstanceNorm, nn.LocalResponseNorm)
PARAMWISE_KEYS = {"norm_decay_mult", "bias_decay_mult", "custom_keys"}
CUSTOM_KEY_OPTIONS = {"lr_mult", "decay_mult"}
WRAPPER_KEYS = {"type", "paramwise", "clip_grad", "accumulate"}
CLIP_GRAD_KEYS = {"max_norm", "norm_type"}


def _optimizer_class(name: Any) -> type[torch.optim.Optimizer]:
    cls = getattr(torch.optim, name, None) if isinstance(name, str) else None
    if not (inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer)):
        known = sorted(n for n, c in vars(torch.optim).items()
                       if inspect.isclass(c) and issubclass(c, torch.optim.Optimizer)
                       and c is not torch.optim.Optimizer)
        raise ConfigError(f"optim.type: unknown optimizer {name!r}; torch.optim has {known}")
    return cls


def _check_keys(table: dict, allowed: set[str], path: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {unknown}; allowed: {sorted(allowed)}")


def _param_options(name: str, param: nn.Parameter, is_norm: bool, paramwise: dict[str, Any],
                   ) -> tuple[float, float]:
    """``(lr_mult, decay_mult)`` of one parameter; the longest matching custom key wins."""
    custom_keys: dict[str, dict[str, float]] = paramwise.get("custom_keys", {})
    for key in sorted(custom_keys, key=len, reverse=True):
        if key in name:
            options = custom_keys[key]
            return float(options.get("lr_mult", 1.0)), float(options.get("decay_mult", 1.0))
    if is_norm:
        return 1.0, float(paramwise.get("norm_decay_mult", 1.0))
    if name.endswith(".bias") or name == "bias":
        return 1.0, float(paramwise.get("bias_decay_mult", 1.0))
    return 1.0, 1.0


def _named_trainable(model: nn.Module) -> Iterator[tuple[str, nn.Parameter, bool]]:
    """``(name, parameter, belongs_to_norm_layer)`` of every parameter that requires grad."""
    for module_name, module in model.named_modules():
        is_norm = isinstance(module, NORM_LAYERS)
        for param_name, param in module.named_parameters(recurse=False):
            if param.requires_grad:
                yield (f"{module_name}.{param_name}" if module_name else param_name), param, is_norm


def build_param_groups(model: nn.Module, lr: float, weight_decay: float,
                       paramwise: dict[str, Any]) -> list[dict[str, Any]]:
    """Group trainable parameters by their ``(lr, weight_decay)`` after paramwise options.

    Frozen parameters (``requires_grad = False``) are left out, so the optimizer never
    touches them. Group order is deterministic (first appearance in ``named_modules``).
    """
    _check_keys(paramwise, PARAMWISE_KEYS, "optim.paramwise")
    for key, options in paramwise.get("custom_keys", {}).items():
        if not isinstance(options, dict):
            raise ConfigError(f"optim.paramwise.custom_keys.{key}: expected a table")
        _check_keys(options, CUSTOM_KEY_OPTIONS, f"optim.paramwise.custom_keys.{key}")
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for name, param, is_norm in _named_trainable(model):
        lr_mult, decay_mult = _param_options(name, param, is_norm, paramwise)
        group = groups.setdefault(
            (lr_mult, decay_mult),
            {"params": [], "param_names": [], "lr": lr * lr_mult,
             "weight_decay": weight_decay * decay_mult},
        )
        group["params"].append(param)
        group["param_names"].append(name)
    if not groups:
        raise ConfigError("optim: the model has no trainable parameters (all frozen?)")
    return list(groups.values())


def _check_numbers(kwargs: dict[str, Any], cls: type[torch.optim.Optimizer]) -> None:
    """Options whose default is a float (``lr``, ``momentum``...) must be numbers, not
    strings or booleans (``lr = true`` is not 1.0)."""
    parameters = inspect.signature(cls.__init__).parameters
    for key, value in kwargs.items():
        default = parameters[key].default
        numeric = key == "lr" or (isinstance(default, float | int)
                                  and not isinstance(default, bool))
        if numeric and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ConfigError(f"optim.{key}: expected a number, got {value!r} "
                              f"({type(value).__name__})")


def build_optimizer(model: nn.Module, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """The ``torch.optim`` optimizer named by ``cfg['type']`` over ``model``'s parameter groups."""
    if "type" not in cfg:
        raise ConfigError("optim.type: missing (e.g. type = \"SGD\")")
    cls = _optimizer_class(cfg["type"])
    kwargs = {k: v for k, v in cfg.items() if k not in WRAPPER_KEYS}
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "params"}
    _check_keys(kwargs, accepted, f"optim ({cls.__name__})")
    if "lr" not in kwargs:
        raise ConfigError(f"optim.lr: missing (needed by {cls.__name__})")
    _check_numbers(kwargs, cls)
    groups = build_param_groups(model, float(kwargs["lr"]), float(kwargs.get("weight_decay", 0.0)),
                                cfg.get("paramwise", {}))
    try:
        return cls(groups, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"optim: {cls.__name__} rejected the options: {exc}") from exc


class OptimWrapper:
    """Backward, gradient accumulation, AMP loss scaling, clipping and the optimizer step.

    :param optimizer: the optimizer.
    :param accumulate: step once every ``accumulate`` calls of :meth:`backward`.
    :param clip_grad: ``{"max_norm": float, "norm_type": float}`` or ``None``.
    :param scaler: a ``torch.amp.GradScaler`` (disabled one when not using fp16).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, accumulate: int = 1,
                 clip_grad: dict[str, float] | None = None,
                 scaler: torch.amp.GradScaler | None = None) -> None:
        if not isinstance(accumulate, int) or accumulate < 1:
            raise ConfigError(f"optim.accumulate: expected an int >= 1, got {accumulate!r}")
        if clip_grad is not None:
            _check_keys(clip_grad, CLIP_GRAD_KEYS, "optim.clip_grad")
            if "max_norm" not in clip_grad:
                raise ConfigError("optim.clip_grad.max_norm: missing")
        self.optimizer = optimizer
        self.accumulate = accumulate
        self.clip_grad = clip_grad
        self.scaler = scaler or torch.amp.GradScaler("cpu", enabled=False)

    @classmethod
    def from_config(cls, model: nn.Module, cfg: dict[str, Any],
                    scaler: torch.amp.GradScaler | None = None) -> OptimWrapper:
        """Build the optimizer and its wrapper from the ``[optim]`` table."""
        return cls(build_optimizer(model, cfg), accumulate=cfg.get("accumulate", 1),
                   clip_grad=cfg.get("clip_grad"), scaler=scaler)

    def should_step(self, iteration: int, max_iters: int) -> bool:
        """Whether the optimizer steps after (0-based global) ``iteration``."""
        return (iteration + 1) % self.accumulate == 0 or iteration + 1 == max_iters

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradient of ``loss / accumulate`` (loss-scaled under fp16 AMP)."""
        self.scaler.scale(loss / self.accumulate).backward()

    def step(self, after_backward: Callable[[], None],
             check_grad_norm: Callable[[float], None] | None = None) -> float | None:
        """Unscale, call ``after_backward`` (true gradients visible), clip, step, zero grads.

        :param check_grad_norm: called with the gradient norm before clipping and stepping
            (it raises to stop the step); not under fp16 loss scaling, where the scaler skips
            the steps of non-finite gradients itself.
        :returns: the gradient norm before clipping, or ``None`` without clipping.
        """
        self.scaler.unscale_(self.optimizer)
        after_backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"]
                  if p.grad is not None]
        grad_norm = None
        if self.clip_grad is not None:
            grads = [p.grad for p in params]
            norm = nn.utils.get_total_norm(grads, self.clip_grad.get("norm_type", 2.0),
                                           foreach=True)
            grad_norm = float(norm)
            if not grad_norm <= self.clip_grad["max_norm"]:  # over the bound, or not finite
                nn.utils.clip_grads_with_norm_(params, self.clip_grad["max_norm"], norm,
                                               foreach=True)
        if check_grad_norm is not None and not self.scaler.is_enabled():
            norm = grad_norm
            if norm is None:
                norm = float(nn.utils.get_total_norm([p.grad for p in params]))
            check_grad_norm(norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def no_sync(self, model: nn.Module, stepping: bool) -> AbstractContextManager:
        """DDP's ``no_sync`` while accumulating (no all-reduce until the stepping backward)."""
        if not stepping and hasattr(model, "no_sync"):
            return model.no_sync()
        return nullcontext()

    def get_lrs(self) -> list[float]:
        """Current learning rate of every parameter group."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Optimizer and grad-scaler state."""
        return {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.optimizer.load_state_dict(state["optimizer"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
