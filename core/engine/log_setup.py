"""The run's text logger: a log file in the work dir plus the console (rank 0 only)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.engine.progress import ProgressBar

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
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    components = logging.getLogger(COMPONENT_LOGGER)
    components.setLevel(logger.level)
    components.propagate = False
    for handler in logger.handlers:
        components.addHandler(handler)
    return logger, bar


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
