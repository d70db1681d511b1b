"""Exponential moving average of the model weights, used for validation and testing."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from core.engine.hooks.base import PRIORITIES, Hook
from core.errors import CheckpointError, require_at_least, require_between

if TYPE_CHECKING:
    from core.engine.runner import Runner
    from core.structures import DetBatch


class EMAHook(Hook):
    """Keeps ``ema = (1 - m) * ema + m * weights`` after every iteration.

    ``m`` is ``momentum``, or with ``ramp_tau > 0`` (the YOLO recipe, as ultralytics'
    ``ModelEMA`` and MMYOLO's ``ExpMomentumEMA``) it starts near 1 and decays to
    ``momentum``: at update ``u = 1, 2, ...``

        m(u) = momentum + (1 - momentum) * exp(-u / ramp_tau)

    i.e. the average keeps weight ``d = (1 - momentum) * (1 - exp(-u / ramp_tau))``; YOLO
    configs use ``momentum = 0.0001`` (``decay = 0.9999``) and ``ramp_tau = 2000``. ``u``
    counts iterations after ``begin_iter`` (``runner.iter - begin_iter``), so it is restored
    exactly on resume.

    Validation and testing run with the averaged weights (swapped in and out); checkpoints
    store them under ``ema_state_dict``.

    :param momentum: weight of the current model in each update (its floor with a ramp).
    :param update_buffers: average buffers too (otherwise they are copied).
    :param begin_iter: iterations before averaging starts (the average copies until then).
    :param ramp_tau: iterations of the exponential momentum ramp; 0 (default): fixed
        ``momentum``.
    """

    priority = PRIORITIES["ABOVE_NORMAL"]

    def __init__(self, momentum: float = 0.0002, update_buffers: bool = False,
                 begin_iter: int = 0, ramp_tau: float = 0.0) -> None:
        require_between("EMAHook.momentum", momentum, 0, 1)
        require_at_least("EMAHook.ramp_tau", ramp_tau, 0, " (0: no ramp)")
        self.momentum = momentum
        self.update_buffers = update_buffers
        self.begin_iter = begin_iter
        self.ramp_tau = ramp_tau
        self.ema_state: dict[str, torch.Tensor] = {}
        self._param_names: set[str] | None = None

    def momentum_at(self, update: int) -> float:
        """The weight of the current model in update ``update`` (1-based)."""
        if not self.ramp_tau:
            return self.momentum
        return self.momentum + (1.0 - self.momentum) * math.exp(-update / self.ramp_tau)

    def _copy_from_model(self, runner: Runner) -> None:
        self.ema_state = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}

    def before_run(self, runner: Runner) -> None:
        """Start the average at the current weights."""
        self._copy_from_model(runner)

    @torch.no_grad()
    def after_train_iter(self, runner: Runner, batch_idx: int, batch: DetBatch,
                         outputs: dict[str, float]) -> None:
        """Fold the updated weights into the average (one ``foreach`` call per kind)."""
        if self._param_names is None:
            self._param_names = {name for name, _ in runner.model.named_parameters()}
        copy_to, copy_from, average, current = [], [], [], []
        started = runner.iter > self.begin_iter
        for key, value in runner.model.state_dict().items():
            averaged = key in self._param_names or self.update_buffers
            if started and averaged and value.is_floating_point():
                average.append(self.ema_state[key])
                current.append(value.detach())
            else:
                copy_to.append(self.ema_state[key])
                copy_from.append(value)
        if average:
            torch._foreach_lerp_(average, current, self.momentum_at(runner.iter - self.begin_iter))
        if copy_to:
            torch._foreach_copy_(copy_to, copy_from)

    def _swap(self, runner: Runner) -> None:
        model_state = runner.model.state_dict()
        for key, value in model_state.items():
            tmp = value.detach().clone()
            value.copy_(self.ema_state[key])
            self.ema_state[key].copy_(tmp)

    def before_val(self, runner: Runner) -> None:
        """Validate with the averaged weights."""
        self._swap(runner)

    def after_val(self, runner: Runner, metrics: dict[str, float]) -> None:
        """Put the training weights back."""
        self._swap(runner)

    def before_test(self, runner: Runner) -> None:
        """Test with the averaged weights."""
        self._swap(runner)

    def after_test(self, runner: Runner, metrics: dict[str, float]) -> None:
        """Put the loaded weights back."""
        self._swap(runner)

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict[str, Any]) -> None:
        """Store the average next to the training weights."""
        checkpoint["ema_state_dict"] = {k: v.clone() for k, v in self.ema_state.items()}

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict[str, Any]) -> None:
        """Restore the average (or start it at the loaded weights if the file has none)."""
        saved = checkpoint.get("ema_state_dict")
        if saved is None:
            self._copy_from_model(runner)
            return
        missing = sorted(set(self.ema_state) ^ set(saved))
        if missing:
            raise CheckpointError("EMAHook: the checkpoint's ema_state_dict does not fit the "
                                  f"model; differing keys: {missing[:20]}")
        for key, value in saved.items():
            self.ema_state[key].copy_(value)
