"""The config of a resumed run: the run's own saved ``config.toml``, changed only by ``--set``.

A run saves its full config as ``config.toml`` next to its checkpoints; ``--resume`` starts
from it, so an override the run was started with stays in force without being repeated. The
CONFIG file named on the command line serves to work out what each ``--set`` changes (with
``${...}`` references followed and a changed ``type``'s defaults filled in); its own values
do not replace the saved ones, and where it differs from the saved config a warning names
the keys. A checkpoint without a saved config next to it resumes with the CONFIG file.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from core.config import read_config
from core.engine.checkpoint import load_checkpoint
from core.engine.full_config import resolve_config
from core.engine.resume_overrides import check_resume_change
from core.engine.run_config import TRAIN_DEFAULTS
from core.errors import ConfigError

#: The file name of a run's saved config.
SAVED_CONFIG = "config.toml"
#: How many differing keys the warning about the CONFIG file names.
MAX_LISTED = 5
#: How many characters of a value the warning shows.
MAX_VALUE_CHARS = 40

KeyPath = tuple[str | int, ...]


class _Missing:
    """The value of a key a config does not have."""

    def __repr__(self) -> str:
        return "unset"


MISSING: Any = _Missing()


@attrs.frozen
class ResumePlan:
    """What ``--resume`` continues and with which config.

    :ivar checkpoint: the checkpoint to continue.
    :ivar config: the config to continue with (full form, as a run saves it).
    :ivar warning: names the keys where the CONFIG file differs from the run's saved config
        (their saved values are kept); empty when there is nothing to say.
    """

    checkpoint: Path
    config: dict[str, Any]
    warning: str = ""


def resume_checkpoint(resume: str, config_path: str, work_dir: str | None) -> Path:
    """The checkpoint ``--resume [CKPT]`` names: CKPT, or the latest of the config's runs."""
    from core.engine.launch import RESUME_LATEST
    from core.engine.workdir import latest_checkpoint, work_root

    if resume == RESUME_LATEST:
        return latest_checkpoint(work_root(config_path, work_dir))
    return Path(resume)


def plan_resume(checkpoint: str | Path, config_path: str, overrides: Sequence[str],
                allow_new: bool = False) -> ResumePlan:
    """The config to continue ``checkpoint`` with: its run's saved config with ``overrides``.

    :raises ConfigError: for an override that changes a key that cannot change on resume
        (see :mod:`core.engine.resume_overrides`), or one the saved config has no place for.
    """
    from core.plugins import get_registries

    checkpoint = Path(checkpoint)
    regs = get_registries()
    raw = read_config(config_path)
    stages = [resolve_config(raw, overrides[:count], regs, allow_new=allow_new,
                             counts_from_data=True)
              for count in range(len(overrides) + 1)]
    saved = checkpoint.parent / SAVED_CONFIG
    has_saved = saved.is_file()
    config = read_config(saved) if has_saved else stages[0]
    for before, after, override in zip(stages, stages[1:], overrides, strict=False):
        changes = [(path, new) for path, _, new in differences(before, after)]
        own = _key_path(override)
        if _get(after, own) is not MISSING:
            changes.append((own, _get(after, own)))
        updated = _with_changes(config, changes, override, saved)
        check_resume_change(override, [_dotted(path) for path, _, _ in
                                       differences(config, updated)])
        config = updated
    ignored = differences(config, stages[-1]) if has_saved else []
    return ResumePlan(checkpoint, config, _describe(ignored, config_path, saved))


def refuse_finished(checkpoint: Path, config: dict[str, Any]) -> None:
    """Refuse to resume a checkpoint that already trained as far as ``config`` asks.

    :raises ConfigError: naming the checkpoint, how far it trained, the limit and how to
        train further.
    """
    meta = load_checkpoint(checkpoint).get("meta")
    if not isinstance(meta, dict):
        return  # not a full training checkpoint: resuming names what it lacks
    train = {**TRAIN_DEFAULTS, **config.get("train", {})}
    if train["by_epoch"]:
        done, limit, key, unit = meta["epoch"], train["max_epochs"], "train.max_epochs", "epoch"
    else:
        done, limit, key, unit = meta["iter"], train["max_iters"], "train.max_iters", "iteration"
    if isinstance(limit, int) and not isinstance(limit, bool) and done >= limit:
        raise ConfigError(
            f"{checkpoint} already finished {done} {unit}{'' if done == 1 else 's'} "
            f"({key} = {limit}); nothing to resume; raise {key} with --set to train further")


def differences(before: Any, after: Any, path: KeyPath = ()) -> list[tuple[KeyPath, Any, Any]]:
    """The keys where ``after`` differs from ``before``: ``(key path, before's value, after's
    value)``, :data:`MISSING` where a side lacks the key. Tables are compared key by key,
    lists of one length item by item; values of different types differ."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = [*before, *(key for key in after if key not in before)]
        return [found for key in keys for found in
                differences(before.get(key, MISSING), after.get(key, MISSING), (*path, key))]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [found for index, (old, new) in enumerate(zip(before, after, strict=True))
                for found in differences(old, new, (*path, index))]
    if type(before) is type(after) and before == after:
        return []
    return [(path, before, after)]


def _key_path(override: str) -> KeyPath:
    key = override.partition("=")[0].strip()
    return tuple(int(part) if part.isdigit() else part for part in key.split("."))


def _dotted(path: KeyPath) -> str:
    return ".".join(str(part) for part in path)


def _get(tree: Any, path: KeyPath) -> Any:
    node = tree
    for part in path:
        in_table = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if not (in_table or in_list):
            return MISSING
        node = node[part]
    return node


def _with_changes(config: dict[str, Any], changes: list[tuple[KeyPath, Any]], override: str,
                  saved: Path) -> dict[str, Any]:
    """A copy of ``config`` with each ``(key path, value)`` set (:data:`MISSING` removes)."""
    result = copy.deepcopy(config)
    for path, value in changes:
        node: Any = result
        for depth, part in enumerate(path[:-1]):
            if isinstance(node, dict) and part not in node:
                node[part] = {} if isinstance(path[depth + 1], str) else []
            node = _get(node, (part,))
            if not isinstance(node, dict | list):
                raise ConfigError(f"--set {override}: {saved} has no "
                                  f"{_dotted(path[:depth + 2])} to set")
        last = path[-1]
        if isinstance(node, list) and not (isinstance(last, int) and last < len(node)):
            raise ConfigError(f"--set {override}: {saved} has no {_dotted(path)} to set")
        if value is not MISSING:
            node[last] = copy.deepcopy(value)
        elif isinstance(node, dict):
            node.pop(last, None)
    return result


def _show(value: Any) -> str:
    """A value as the warning shows it: TOML-like, shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = f'"{value}"'
    else:
        text = repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 3] + "..."


def _describe(ignored: list[tuple[KeyPath, Any, Any]], config_path: str, saved: Path) -> str:
    """The warning naming where the CONFIG file differs from the saved config, or ``""``."""
    if not ignored:
        return ""
    listed = ", ".join(f"{_dotted(path)} (saved {_show(kept)}, config file {_show(given)})"
                       for path, kept, given in ignored[:MAX_LISTED])
    more = f" and {len(ignored) - MAX_LISTED} more" if len(ignored) > MAX_LISTED else ""
    return (f"{config_path} differs from {saved} in {listed}{more}; the resumed run keeps its "
            f"saved values: repeat a change with --set to apply it")

