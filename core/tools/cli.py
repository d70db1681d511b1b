"""What the command-line tools share: the config override options, and the common ending (a
summary line and exit status 0, or ``error: MESSAGE`` on stderr and exit status 2)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

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
