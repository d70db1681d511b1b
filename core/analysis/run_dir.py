"""Reading a finished run directory: its saved config, its logged scalars, its validations
(with their epochs) and its checkpoints."""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from core.errors import ConfigError, DataError
from core.visualization.curves import SCALAR_FILE, read_scalars

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

CONFIG_FILE = "config.toml"
LOG_FILE = "train.log"
LAST_CHECKPOINT = "last_checkpoint"
VAL_PREFIX = "val/"
VAL_EPOCH = re.compile(r"Epoch\(val\) \[(\d+)\]")
#: The time stamp that starts every line of ``train.log``.
LOG_TIME = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) ", re.MULTILINE)
LOG_TIME_FORMAT = "%Y/%m/%d %H:%M:%S"


@attrs.define
class Validation:
    """One validation: its iteration, its epoch (``None`` in iteration-based runs), its
    metrics (``name -> value`` without the ``val/`` prefix) and the wall time from the first
    line of the training log to its ``Epoch(val)`` line (``None`` without a log)."""

    step: int
    epoch: int | None
    metrics: dict[str, float]
    seconds: float | None = None


@attrs.define
class Run:
    """A run directory as read from disk.

    :ivar config: the saved ``config.toml`` (full form) parsed; ``config_text``: as written.
    :ivar scalars: ``name -> [(iteration, value), ...]`` of ``vis_data/scalars.json``.
    :ivar validations: in the order they ran.
    :ivar metric: the metric that picks the best validation (the checkpoint hook's
        ``save_best`` when it names one, else the first validation metric).
    """

    path: Path
    config: dict[str, Any]
    config_text: str
    scalars: dict[str, list[tuple[int, float]]]
    validations: list[Validation]
    metric: str | None

    @property
    def name(self) -> str:
        """``<config stem>/<timestamp>``: the two last parts of the path."""
        return "/".join(self.path.resolve().parts[-2:])

    def best(self) -> Validation | None:
        """The validation with the highest ``metric`` (lowest for a loss)."""
        scored = [v for v in self.validations if self.metric in v.metrics]
        if not scored:
            return None
        sign = -1.0 if self.metric and "loss" in self.metric else 1.0
        return max(scored, key=lambda v: sign * v.metrics[self.metric])  # type: ignore[index]

    def at_epoch(self, epoch: int) -> Validation | None:
        """The validation run at ``epoch`` (an iteration in iteration-based runs)."""
        return next((v for v in self.validations if (v.epoch or v.step) == epoch), None)


def _validations(scalars_file: Path, log_file: Path) -> list[Validation]:
    """The validation records of ``scalars.json``, epochs taken from the ``Epoch(val) [N]``
    lines of the training log (in the same order) when it has one per record."""
    records = []
    if scalars_file.is_file():
        for line in scalars_file.read_text(encoding="utf-8").splitlines():
            record = json.loads(line) if line.strip() else {}
            metrics = {k.removeprefix(VAL_PREFIX): float(v) for k, v in record.items()
                       if k.startswith(VAL_PREFIX) and isinstance(v, int | float)}
            if metrics:
                records.append((int(record["step"]), metrics))
    epochs: list[int | None] = []
    seconds: list[float | None] = []
    if log_file.is_file():
        text = log_file.read_text("utf-8")
        epochs = [int(m.group(1)) for m in VAL_EPOCH.finditer(text)]
        seconds = _validation_seconds(text)
    if len(epochs) != len(records):
        epochs = [None] * len(records)
    if len(seconds) != len(records):
        seconds = [None] * len(records)
    return [Validation(step, epoch, metrics, elapsed) for (step, metrics), epoch, elapsed
            in zip(records, epochs, seconds, strict=True)]


def _validation_seconds(log_text: str) -> list[float | None]:
    """Seconds from the log's first time stamp to each ``Epoch(val)`` line's."""
    first = LOG_TIME.search(log_text)
    if first is None:
        return []
    start = datetime.strptime(first.group(1), LOG_TIME_FORMAT)
    out: list[float | None] = []
    for line in log_text.splitlines():
        if VAL_EPOCH.search(line):
            stamp = LOG_TIME.match(line)
            out.append(None if stamp is None else
                       (datetime.strptime(stamp.group(1), LOG_TIME_FORMAT) - start)
                       .total_seconds())
    return out


def _main_metric(config: dict[str, Any], validations: list[Validation]) -> str | None:
    save_best = config.get("default_hooks", {}).get("checkpoint", {}).get("save_best")
    if isinstance(save_best, str) and save_best != "auto" and save_best:
        return save_best
    return next(iter(validations[0].metrics)) if validations else None


def read_run(path: str | Path) -> Run:
    """Read the run directory ``path``.

    :raises ConfigError: ``path`` is not a run directory (no ``config.toml``).
    :raises DataError: a file of it cannot be parsed.
    """
    path = Path(path)
    config_file = path / CONFIG_FILE
    if not config_file.is_file():
        raise ConfigError(f"{path}: not a run directory (no {CONFIG_FILE}; give the folder a "
                          "training run wrote, such as work_dirs/CONFIG/TIMESTAMP)")
    text = config_file.read_text(encoding="utf-8")
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"{config_file}: not TOML: {exc}") from None
    scalars_file = path / SCALAR_FILE
    scalars = read_scalars(scalars_file) if scalars_file.is_file() else {}
    validations = _validations(scalars_file, path / LOG_FILE)
    return Run(path, config, text, scalars, validations, _main_metric(config, validations))


def checkpoint_of(run: Run, which: str) -> Path:
    """The checkpoint ``which`` names: ``"best"`` (the ``best_*.pth`` file), ``"last"`` (the
    one ``last_checkpoint`` names) or a path.

    :raises ConfigError: it does not exist.
    """
    if which == "best":
        found = sorted(run.path.glob("best_*.pth"))
        if not found:
            raise ConfigError(f"{run.path}: no best_*.pth checkpoint (the run saved no best "
                              "one); use --checkpoint last or a path")
        return found[-1]
    if which == "last":
        pointer = run.path / LAST_CHECKPOINT
        if not pointer.is_file():
            raise ConfigError(f"{run.path}: no {LAST_CHECKPOINT} file; give --checkpoint PATH")
        name = pointer.read_text(encoding="utf-8").strip()
        path = Path(name) if Path(name).is_absolute() else run.path / name
    else:
        path = Path(which)
    if not path.is_file():
        raise ConfigError(f"--checkpoint {which}: {path} does not exist")
    return path
