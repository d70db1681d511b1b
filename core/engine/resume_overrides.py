"""Which ``--set`` overrides may accompany ``--resume``.

A resumed run restores the optimizer, the schedulers, the generator states and its position
in the epoch from the checkpoint, so an override of those keys would be recorded in the
run's ``config.toml`` without taking effect. Such overrides are refused; every other key
(epochs, hooks, validation, the model's non-weight options...) applies.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.errors import ConfigError

#: top-level config keys the checkpoint decides on resume, and why.
FIXED_ON_RESUME: dict[str, str] = {
    "optim": "the checkpoint's optimizer state (learning rates, momentum, ...) replaces it",
    "param_schedulers": "the checkpoint's scheduler state replaces it",
    "train_dataloader": "the resumed position in the epoch depends on the same batches",
    "seed": "the checkpoint's generator states replace it",
}


def check_resume_overrides(overrides: Iterable[str]) -> None:
    """Refuse the ``KEY=VALUE`` overrides that cannot change on ``--resume``.

    :raises ConfigError: naming the override, why it cannot apply and what to do instead.
    """
    for override in overrides:
        key = override.partition("=")[0].strip()
        top = key.split(".", 1)[0]
        if top in FIXED_ON_RESUME:
            raise ConfigError(
                f"--set {override}: {key} cannot change on --resume "
                f"({FIXED_ON_RESUME[top]}); start a new run with load_from to change it")
