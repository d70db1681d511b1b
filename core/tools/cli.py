"""What the command-line tools share: the config override options, and the common ending (a
summary line and exit status 0, or ``error: MESSAGE`` on stderr and exit status 2)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from core.errors import ConfigError, PlugdetError

ERROR_EXIT_STATUS = 2


def run_reporting_errors(
    work: Callable[[], str], errors: type[Exception] | tuple[type[Exception], ...]
) -> int:
    """Run ``work`` and print the summary line it returns; returns the exit status.

    :param work: the tool's job; returns the line printed on success.
    :param errors: the expected (user input) errors, printed as ``error: MESSAGE`` with exit
        status 2; any other exception propagates with its traceback.
    """
    try:
        summary = work()
    except errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ERROR_EXIT_STATUS
    print(summary)
    return 0


def run_tool(
    argv: list[str] | None,
    prog: str,
    doc: str | None,
    examples: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], str],
) -> int:
    """Parse ``argv`` with a tool's options and run it, ending as :func:`run_reporting_errors`
    does (a :class:`~core.errors.PlugdetError` is the user's); returns the exit status.

    :param prog: the command shown in the usage and the examples.
    :param doc: the tool's module docstring; its first paragraph describes the tool.
    :param examples: the help's epilog, a template with ``{prog}``.
    :param add_arguments: adds the tool's options to the parser.
    :param run: the tool's job on the parsed options; returns the summary line.
    """
    parser = argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n\n")[0],
                                     epilog=examples.format(prog=prog),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_reporting_errors(lambda: run(args), PlugdetError)


def add_override_arguments(parser: argparse.ArgumentParser, allow_new: bool = True) -> None:
    """``--set KEY=VALUE`` (repeatable, into ``args.overrides``) and, with ``allow_new``,
    ``--set-new``; the same meaning as for training."""
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a config key (VALUE is a TOML literal; bare words are "
                             "strings); repeatable")
    if allow_new:
        parser.add_argument("--set-new", action="store_true",
                            help="allow --set to add keys the config lacks")



def _check_parents(path: Path, option: str) -> None:
    """Refuse ``path`` when the nearest of its existing parents is a file."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {path}: {parent} is a file, not a folder")
            return


def check_output_folder(path: Path, option: str = "--out") -> Path:
    """Refuse an output folder that cannot be made (it exists as a file, or a folder above
    it does), before any work is done; returns ``path``.

    :raises ConfigError: naming ``option`` and the path.
    """
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: exists and is not a folder")
    _check_parents(path, option)
    return path


def check_output_file(path: Path, example_name: str, option: str = "--out") -> Path:
    """Refuse an output file path that is a folder (suggesting ``path / example_name``) or
    lies below a file, before any work is done; returns ``path``.

    :raises ConfigError: naming ``option`` and the path.
    """
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder; give a file name such as "
                          f"{path / example_name}")
    _check_parents(path, option)
    return path


def make_output_folder(path: Path, option: str = "--out") -> Path:
    """Create the output folder ``path`` (and its parents) if missing; returns ``path``.

    :raises ConfigError: it cannot be created (see :func:`check_output_folder`).
    """
    check_output_folder(path, option)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot create the folder "
                          f"({exc.strerror or exc})") from exc
    return path
