"""Which ``--set`` changes may accompany ``--resume``.

A resumed run restores the optimizer, the schedulers, the generator states, its position in
the epoch and its best checkpoint from the checkpoint, so a change of the keys behind them
would be recorded in the run's ``config.toml`` without taking effect, or would judge the
rest of the run differently from its start. Such changes are refused (an override repeating
the run's value is no change); every other key (epochs, hooks, validation, the model's
non-weight options...) applies.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.errors import ConfigError

_BEST = "the run's best checkpoint so far was chosen by it"

#: config keys (a key and everything under it) the checkpoint decides on resume, and why.
FIXED_ON_RESUME: dict[str, str] = {
    "optim": "the checkpoint's optimizer state (learning rates, momentum, ...) replaces it",
    "param_schedulers": "the checkpoint's scheduler state replaces it",
    "train_dataloader": "the resumed position in the epoch depends on the same batches",
    "seed": "the checkpoint's generator states replace it",
    "default_hooks.checkpoint.save_best": _BEST,
    "default_hooks.checkpoint.rule": _BEST,
}


def fixed_on_resume(key: str) -> str | None:
    """The entry of :data:`FIXED_ON_RESUME` covering the dotted config ``key``, or ``None``."""
    return next((fixed for fixed in FIXED_ON_RESUME
                 if key == fixed or key.startswith(fixed + ".")), None)


def check_resume_change(override: str, changed: Iterable[str]) -> None:
    """Refuse ``override`` when a config key it changes (dotted) cannot change on resume.

    :raises ConfigError: naming the override, the key, why it cannot change and what to do
        instead.
    """
    for key in changed:
        fixed = fixed_on_resume(key)
        if fixed is not None:
            raise ConfigError(
                f"--set {override}: {key} cannot change on --resume "
                f"({FIXED_ON_RESUME[fixed]}); start a new run with load_from to change it")
