"""Error types that say what went wrong and where (file, config key, sample), the checks of a
constructor's numeric arguments that raise them, and the one-line form of a failed file write
(full disk, read-only folder)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager


class PlugdetError(Exception):
    """Base class of every error plugdet raises on purpose."""


class ConfigError(PlugdetError, ValueError):
    """A config file, key or value is wrong; the message names the file or dotted key path."""


class PluginError(PlugdetError):
    """A plugin is broken: bad hook implementation, duplicate component name, crash on import."""


class DataError(PlugdetError, ValueError):
    """A dataset file or sample is unusable; the message names the file and the sample."""


class CheckpointError(PlugdetError):
    """A checkpoint cannot be written or does not fit the model it is loaded into."""


class ContractError(PluginError):
    """A component lacks a member of its stage's contract (:mod:`core.contracts`)."""


def require_at_least(key: str, value: float, minimum: float, note: str = "") -> None:
    """Refuse a ``value`` below ``minimum`` with :class:`ConfigError`
    ``"<key>: expected >= <minimum><note>, got <value>"``; ``note`` says what the bound means
    (``" (0: no ramp)"``)."""
    if value < minimum:
        raise ConfigError(f"{key}: expected >= {minimum}{note}, got {value}")


def require_positive(key: str, value: float) -> None:
    """Refuse ``value <= 0`` with :class:`ConfigError`
    ``"<key>: expected a positive value, got <value>"``."""
    if value <= 0:
        raise ConfigError(f"{key}: expected a positive value, got {value}")


def require_positive_int(key: str, value: int) -> None:
    """Refuse ``value < 1`` with :class:`ConfigError`
    ``"<key>: expected a positive int, got <value>"``."""
    if value < 1:
        raise ConfigError(f"{key}: expected a positive int, got {value}")


def require_between(key: str, value: float, low: float, high: float) -> None:
    """Refuse a ``value`` not strictly between ``low`` and ``high`` (NaN too) with
    :class:`ConfigError` ``"<key>: expected <low> < <name> < <high>, got <value>"``, ``name``
    the last part of the dotted ``key``."""
    if not low < value < high:
        name = key.rsplit(".", 1)[-1]
        raise ConfigError(f"{key}: expected {low} < {name} < {high}, got {value}")


#: errno values that mean the disk (or the user's quota) is full.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class RunFileError(PlugdetError):
    """A file of a run (checkpoint, picture, log) cannot be written; the message names it."""


def os_error_of(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc``: ``exc`` itself, or the one a RuntimeError was raised while
    handling (``torch.save`` reports a failed write of its file object that way); else
    ``None``."""
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, RuntimeError) and isinstance(exc.__context__, OSError):
        return exc.__context__
    return None


def describe_os_error(error: OSError, path: str | os.PathLike[str] | None = None) -> str:
    """One line for a failed file operation: ``path`` is the file being written if known,
    else the error's own file name is named."""
    if error.errno in NO_SPACE_ERRNOS:
        target = path if path is not None else error.filename
        return "no space left on device" + (f" while writing {target}" if target else "")
    reason = error.strerror or str(error)
    if path is not None:
        return f"cannot write {path}: {reason}"
    return f"cannot access {error.filename}: {reason}" if error.filename else reason


@contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn an OSError of the block (also one wrapped by torch, see :func:`os_error_of`) into
    :class:`RunFileError` naming ``path``, the file the block writes."""
    try:
        yield
    except RunFileError:
        raise
    except Exception as exc:
        error = os_error_of(exc)
        if error is None:
            raise
        raise RunFileError(describe_os_error(error, path)) from exc
