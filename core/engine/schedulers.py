"""Learning-rate schedules built on ``torch.optim.lr_scheduler``, per iteration or per epoch.

Config (``[[param_schedulers]]``, applied multiplicatively in order)::

    [[param_schedulers]]
    type = "LinearWarmup"      # LinearLR from start_factor to 1 over [begin, end)
    start_factor = 0.001
    by_epoch = false           # count iterations
    end = 500
    [[param_schedulers]]
    type = "MultiStep"         # MultiStepLR; milestones counted from begin
    by_epoch = true
    milestones = [8, 11]
    gamma = 0.1

Types: ``LinearWarmup`` (start_factor), ``Linear`` (start_factor = 1, end_factor = 0.01:
the YOLO decay to ``lrf = 0.01``), ``Step`` (step_size, gamma), ``MultiStep``
(milestones, gamma), ``Cosine`` (eta_min; period end - begin), ``Poly`` (power; over
end - begin). ``begin`` defaults to 0, ``end`` to the run's length in the scheduler's unit.
A per-iteration scheduler of an epoch-based run may give ``end_epochs = N``: it then ends
at ``max(end, N * iterations per epoch)`` (``end`` defaults to 0 then), e.g. the YOLO warm-up
over ``max(3 epochs, 1000 iterations)``::

    [[param_schedulers]]
    type = "LinearWarmup"
    by_epoch = false
    start_factor = 0.001
    end = 1000
    end_epochs = 3

A scheduler's torch object is created when its window begins, so several schedulers chain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import lr_scheduler

from core.errors import ConfigError

LRScheduler = lr_scheduler.LRScheduler

#: type name -> (allowed extra keys, factory(optimizer, span, options) -> torch scheduler)
_FACTORIES: dict[str, tuple[set[str], Callable[..., LRScheduler]]] = {
    "LinearWarmup": ({"start_factor"}, lambda opt, span, o: lr_scheduler.LinearLR(
        opt, start_factor=o.get("start_factor", 0.001), end_factor=1.0, total_iters=span)),
    "Linear": ({"start_factor", "end_factor"}, lambda opt, span, o: lr_scheduler.LinearLR(
        opt, start_factor=o.get("start_factor", 1.0), end_factor=o.get("end_factor", 0.01),
        total_iters=span)),
    "Step": ({"step_size", "gamma"}, lambda opt, span, o: lr_scheduler.StepLR(
        opt, step_size=o["step_size"], gamma=o.get("gamma", 0.1))),
    "MultiStep": ({"milestones", "gamma"}, lambda opt, span, o: lr_scheduler.MultiStepLR(
        opt, milestones=o["milestones"], gamma=o.get("gamma", 0.1))),
    "Cosine": ({"eta_min"}, lambda opt, span, o: lr_scheduler.CosineAnnealingLR(
        opt, T_max=span, eta_min=o.get("eta_min", 0.0))),
    "Poly": ({"power"}, lambda opt, span, o: lr_scheduler.PolynomialLR(
        opt, total_iters=span, power=o.get("power", 1.0))),
}
_REQUIRED = {"Step": ("step_size",), "MultiStep": ("milestones",)}
_COMMON_KEYS = {"type", "by_epoch", "begin", "end", "end_epochs"}
#: Scheduler attributes saved in checkpoints (plain types only).
_STATE_KEYS = ("last_epoch", "_step_count", "base_lrs", "_last_lr")


class WindowedScheduler:
    """One torch scheduler active for steps ``begin < t <= end`` of its unit.

    :param optimizer: the optimizer whose ``lr`` the scheduler changes.
    :param kind: a key of the supported types.
    :param by_epoch: count epochs (``True``) or iterations.
    :param begin: step count at which the schedule starts (its torch object is created then).
    :param end: step count at which it stops changing the lr.
    :param options: the type's own options (gamma, milestones, ...).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, kind: str, by_epoch: bool, begin: int,
                 end: int, options: dict[str, Any]) -> None:
        self.optimizer = optimizer
        self.kind = kind
        self.by_epoch = by_epoch
        self.begin = begin
        self.end = end
        self.options = options
        self.scheduler: LRScheduler | None = None
        self.start_if_due(0)

    def start_if_due(self, count: int) -> None:
        """Create the torch scheduler once ``count`` reaches ``begin``."""
        if self.scheduler is None and count >= self.begin:
            self.scheduler = _FACTORIES[self.kind][1](self.optimizer, self.end - self.begin,
                                                      self.options)

    def step(self, count: int) -> None:
        """Advance after the unit's step counter became ``count``."""
        self.start_if_due(count)
        if self.scheduler is not None and self.begin < count <= self.end:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any] | None:
        """The torch scheduler's counters, or ``None`` before it started."""
        if self.scheduler is None:
            return None
        return {key: getattr(self.scheduler, key) for key in _STATE_KEYS}

    def load_state_dict(self, state: dict[str, Any] | None, count: int) -> None:
        """Restore counters saved at step ``count`` of this scheduler's unit."""
        self.start_if_due(count)
        if state is not None and self.scheduler is not None:
            for key in _STATE_KEYS:
                setattr(self.scheduler, key, state[key])


def _end_from_epochs(entry: dict[str, Any], path: str, by_epoch: bool,
                     max_epochs: int | None, max_iters: int) -> int:
    """``max(end, end_epochs * iterations per epoch)`` of a per-iteration scheduler."""
    epochs = entry["end_epochs"]
    if by_epoch or not max_epochs:
        raise ConfigError(f"{path}.end_epochs: only for a per-iteration scheduler "
                          f"(by_epoch = false) of an epoch-based run")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ConfigError(f"{path}.end_epochs: expected an integer >= 0, got {epochs!r}")
    end = entry.get("end", 0)
    if isinstance(end, bool) or not isinstance(end, int):
        raise ConfigError(f"{path}.end: expected an integer, got {end!r}")
    return max(end, epochs * (max_iters // max_epochs))


def _window(entry: dict[str, Any], path: str, by_epoch: bool, max_epochs: int | None,
            max_iters: int) -> tuple[int, int]:
    length = max_epochs if by_epoch else max_iters
    begin = entry.get("begin", 0)
    if "end_epochs" in entry:
        end = _end_from_epochs(entry, path, by_epoch, max_epochs, max_iters)
    else:
        end = entry.get("end", length)
    if end is None:
        raise ConfigError(f"{path}.end: needed for a per-epoch scheduler in an iteration run")
    if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin < end):
        raise ConfigError(f"{path}: expected integers 0 <= begin < end, got begin={begin!r}, "
                          f"end={end!r}")
    return begin, end


class ParamSchedulers:
    """All configured schedulers; the runner calls :meth:`step_iter` and :meth:`step_epoch`."""

    def __init__(self, schedulers: list[WindowedScheduler]) -> None:
        self.schedulers = schedulers

    @classmethod
    def from_config(cls, optimizer: torch.optim.Optimizer, entries: list[dict[str, Any]],
                    max_epochs: int | None, max_iters: int) -> ParamSchedulers:
        """Build from the ``param_schedulers`` list; ConfigError naming the entry when wrong."""
        schedulers = []
        for index, entry in enumerate(entries):
            path = f"param_schedulers[{index}]"
            kind = entry.get("type")
            if kind not in _FACTORIES:
                raise ConfigError(f"{path}.type: unknown scheduler {kind!r}; "
                                  f"known: {sorted(_FACTORIES)}")
            allowed = _COMMON_KEYS | _FACTORIES[kind][0]
            unknown = sorted(set(entry) - allowed)
            if unknown:
                raise ConfigError(f"{path}: unknown keys {unknown} for {kind}; "
                                  f"allowed: {sorted(allowed)}")
            for key in _REQUIRED.get(kind, ()):
                if key not in entry:
                    raise ConfigError(f"{path}.{key}: required by {kind}")
            by_epoch = entry.get("by_epoch", True)
            if not isinstance(by_epoch, bool):
                raise ConfigError(f"{path}.by_epoch: expected a bool, got {by_epoch!r}")
            begin, end = _window(entry, path, by_epoch, max_epochs, max_iters)
            options = {k: v for k, v in entry.items() if k not in _COMMON_KEYS}
            schedulers.append(WindowedScheduler(optimizer, kind, by_epoch, begin, end, options))
        return cls(schedulers)

    def step_iter(self, iters_done: int) -> None:
        """Advance the per-iteration schedulers after ``iters_done`` iterations."""
        for scheduler in self.schedulers:
            if not scheduler.by_epoch:
                scheduler.step(iters_done)

    def step_epoch(self, epochs_done: int) -> None:
        """Advance the per-epoch schedulers after ``epochs_done`` epochs."""
        for scheduler in self.schedulers:
            if scheduler.by_epoch:
                scheduler.step(epochs_done)

    def state_dict(self) -> list[dict[str, Any] | None]:
        """One entry per scheduler (``None`` for those not started yet)."""
        return [scheduler.state_dict() for scheduler in self.schedulers]

    def load_state_dict(self, states: list[dict[str, Any] | None], iters_done: int,
                        epochs_done: int) -> None:
        """Restore counters saved after ``iters_done`` iterations / ``epochs_done`` epochs.

        Call before loading the optimizer state: starting a torch scheduler rewrites the lr,
        which the optimizer state then restores.
        """
        if len(states) != len(self.schedulers):
            raise ConfigError(f"param_schedulers: the checkpoint has {len(states)} schedulers, "
                              f"the config {len(self.schedulers)}")
        for scheduler, state in zip(self.schedulers, states, strict=True):
            scheduler.load_state_dict(state, epochs_done if scheduler.by_epoch else iters_done)
