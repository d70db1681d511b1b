"""The run's text logger: a log file in the work dir plus the console (rank 0 only)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.engine.progress import ProgressBar
from core.errors import PlugdetError

LOG_FORMAT = "%(asctime)s - %(levelname)s - %(message)s"
DATE_FORMAT = "%Y/%m/%d %H:%M:%S"
#: ``logger.info(line, extra=FILE_ONLY)`` keeps a line out of the console (the bar shows it).
FILE_ONLY = {"console": False}
#: Parent of the loggers that data, evaluation and model code write to; a run's handlers are
#: attached to it too, so their warnings and tables reach the run's log.
COMPONENT_LOGGER = "plugdet"


class ConsoleHandler(logging.StreamHandler):
    """Prints records on stdout, erasing the progress bar first; skips ``FILE_ONLY`` records."""

    def __init__(self, bar: ProgressBar | None) -> None:
        super().__init__(sys.stdout)
        self.bar = bar
        self.addFilter(lambda record: getattr(record, "console", True))

    def emit(self, record: logging.LogRecord) -> None:
        """Clear the bar, then print the record."""
        if self.bar is not None:
            self.bar.clear()
        super().emit(record)


class RunLogFileHandler(logging.FileHandler):
    """Appends to a run's log file; when the file cannot be written (full disk, read-only
    folder) it says so once on stderr instead of printing a traceback per line, and keeps
    trying (the console still shows every line)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8")
        self.warned = False

    def flush(self) -> None:
        """Flush, reporting a failure instead of raising it."""
        try:
            super().flush()
        except OSError as exc:
            self._report(exc)

    def close(self) -> None:
        """Close the file, reporting a failure to write what was still buffered."""
        try:
            super().close()
        except OSError as exc:
            self._report(exc)

    def handleError(self, record: logging.LogRecord) -> None:
        """Report a failed write (an OSError); other errors are logging's usual report."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            self._report(error)
        else:
            super().handleError(record)

    def _report(self, error: OSError) -> None:
        if not self.warned:
            self.warned = True
            sys.stderr.write(f"warning: cannot write {self.baseFilename}: "
                             f"{error.strerror or error}\n")


def setup_logger(name: str, log_file: Path | None, rank: int) -> tuple[logging.Logger,
                                                                      ProgressBar | None]:
    """A logger writing to ``log_file`` and stdout on rank 0 (warnings only on other ranks).

    :returns: the logger and, when stdout is a terminal on rank 0, the progress bar that
        replaces per-interval console lines.
    """
    logger = logging.getLogger(f"plugdet.{name}")
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    bar = ProgressBar(sys.stdout) if rank == 0 and sys.stdout.isatty() else None
    formatter = logging.Formatter(LOG_FORMAT, DATE_FORMAT)
    console = ConsoleHandler(bar)
    console.setFormatter(formatter)
    logger.addHandler(console)
    if log_file is not None and rank == 0:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = RunLogFileHandler(log_file)
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    components = logging.getLogger(COMPONENT_LOGGER)
    components.setLevel(logger.level)
    components.propagate = False
    for handler in logger.handlers:
        components.addHandler(handler)
    return logger, bar


def failure_message(exc: BaseException) -> str:
    """The log line of an error that ended a run: the message of plugdet's own errors, the
    type and message of others."""
    if isinstance(exc, PlugdetError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (KeyboardInterrupt)"
    return f"{type(exc).__name__}: {exc}"


def append_failure(log_file: Path, exc: BaseException,
                   logger: logging.Logger | None = None) -> None:
    """Append an ERROR line for ``exc`` (with the traceback of unexpected errors) to
    ``log_file`` when it already holds lines: a run that logged nothing is removed as empty
    (see :func:`core.engine.workdir.removed_if_left_empty`), the others keep why they ended.

    :param logger: the run's logger, if it is still open: its handle on ``log_file`` is used
        (it still writes after the run directory was made read-only).
    """
    if not log_file.is_file() or log_file.stat().st_size == 0:
        return
    expected = isinstance(exc, (PlugdetError, KeyboardInterrupt))
    record = logging.LogRecord(COMPONENT_LOGGER, logging.ERROR, __file__, 0,
                               failure_message(exc), None,
                               None if expected else (type(exc), exc, exc.__traceback__))
    handler = next((h for h in (logger.handlers if logger else [])
                    if isinstance(h, RunLogFileHandler)), None)
    if handler is not None:
        handler.handle(record)
        return
    try:
        handler = RunLogFileHandler(log_file)
    except OSError:  # an unwritable log: the error still reaches the console
        return
    handler.setFormatter(logging.Formatter(LOG_FORMAT, DATE_FORMAT))
    handler.handle(record)
    handler.close()


def close_logger(logger: logging.Logger) -> None:
    """Flush and detach every handler (closes the log file), also from the component logger."""
    components = logging.getLogger(COMPONENT_LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        components.removeHandler(handler)
        handler.close()


class _RecordBuffer(logging.Handler):
    """Keeps the records it is given."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def buffered_component_logs() -> Iterator[list[logging.LogRecord]]:
    """Hold back what data, model and evaluation code log (the ``plugdet`` loggers) while the
    run's parts are built, before the run's logger exists; :func:`replay` writes the records
    once it does. If the block fails the records are passed on as usual (console)."""
    components = logging.getLogger(COMPONENT_LOGGER)
    buffer = _RecordBuffer()
    saved = components.level, components.propagate, list(components.handlers)
    for handler in saved[2]:
        components.removeHandler(handler)
    components.addHandler(buffer)
    components.setLevel(logging.INFO)
    components.propagate = False
    try:
        yield buffer.records
    except BaseException:
        _restore(components, buffer, saved)
        for record in buffer.records:
            components.handle(record)
        raise
    _restore(components, buffer, saved)


def _restore(components: logging.Logger, buffer: logging.Handler,
             saved: tuple[int, bool, list[logging.Handler]]) -> None:
    components.removeHandler(buffer)
    components.setLevel(saved[0])
    components.propagate = saved[1]
    for handler in saved[2]:
        components.addHandler(handler)


def replay(logger: logging.Logger, records: list[logging.LogRecord]) -> None:
    """Write held-back ``records`` to ``logger``'s handlers (log file and console)."""
    for record in records:
        if record.levelno >= logger.getEffectiveLevel():
            for handler in logger.handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)
