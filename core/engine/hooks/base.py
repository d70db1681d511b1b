"""The runner hook API: subclass :class:`Hook` and override the events you need.

Hooks run in ascending ``priority`` (lower runs first); hooks of equal priority run in the
order they were configured. Register a hook class in stage ``hook`` to use it from a config
(``[[custom_hooks]] type = "MyHook"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import ConfigError

if TYPE_CHECKING:
    from core.engine.runner import Runner
    from core.structures import DetBatch

#: Named priorities; a config may give one of these names or an int (lower runs first).
PRIORITIES: dict[str, int] = {
    "HIGHEST": 0,
    "VERY_HIGH": 10,
    "HIGH": 30,
    "ABOVE_NORMAL": 40,
    "NORMAL": 50,
    "BELOW_NORMAL": 60,
    "LOW": 70,
    "VERY_LOW": 90,
    "LOWEST": 100,
}


def parse_priority(value: int | str, path: str) -> int:
    """An int priority from an int or a name of :data:`PRIORITIES`."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"{path}: expected an int or one of {sorted(PRIORITIES)}, "
                          f"got {value!r}")
    if isinstance(value, str):
        if value not in PRIORITIES:
            raise ConfigError(f"{path}: unknown priority {value!r}; known: {sorted(PRIORITIES)}")
        return PRIORITIES[value]
    return value


class Hook:
    """Base class of runner hooks: every event is a no-op here.

    ``outputs`` of a training iteration is the dict of loss terms (floats) of that iteration;
    of a val/test iteration the list of predicted ``Instances``.
    """

    priority: int = PRIORITIES["NORMAL"]

    def before_run(self, runner: Runner) -> None:
        """Once, after the runner is built (and before any checkpoint is resumed)."""

    def after_run(self, runner: Runner) -> None:
        """Once, at the very end (also after a failed run)."""

    def before_train(self, runner: Runner) -> None:
        """Before the first training epoch (after resuming)."""

    def after_train(self, runner: Runner) -> None:
        """After the last training iteration."""

    def before_train_epoch(self, runner: Runner) -> None:
        """Before each training epoch (``runner.epoch`` is the epoch about to run, 0-based)."""

    def after_train_epoch(self, runner: Runner) -> None:
        """After each epoch (``runner.epoch`` already counts it)."""

    def before_train_iter(self, runner: Runner, batch_idx: int, batch: DetBatch) -> None:
        """Before each training iteration (``batch_idx`` within the epoch)."""

    def after_backward(self, runner: Runner, batch_idx: int) -> None:
        """After backward, gradients unscaled and present, before clipping and the step."""

    def after_train_iter(self, runner: Runner, batch_idx: int, batch: DetBatch,
                         outputs: dict[str, float]) -> None:
        """After each training iteration (``runner.iter`` already counts it)."""

    def before_val(self, runner: Runner) -> None:
        """Before a validation pass."""

    def after_val_iter(self, runner: Runner, batch_idx: int, batch: DetBatch,
                       outputs: list[Any]) -> None:
        """After each validation batch; ``outputs`` are its predicted ``Instances``."""

    def after_val(self, runner: Runner, metrics: dict[str, float]) -> None:
        """After a validation pass with its metrics."""

    def before_test(self, runner: Runner) -> None:
        """Before the test pass."""

    def after_test_iter(self, runner: Runner, batch_idx: int, batch: DetBatch,
                        outputs: list[Any]) -> None:
        """After each test batch; ``outputs`` are its predicted ``Instances``."""

    def after_test(self, runner: Runner, metrics: dict[str, float]) -> None:
        """After the test pass with its metrics."""

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict[str, Any]) -> None:
        """Add this hook's state to ``checkpoint`` (plain types and tensors only)."""

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict[str, Any]) -> None:
        """Restore this hook's state from a resumed or tested ``checkpoint``."""
