"""The run's text logger: a log file in the work dir plus the console (rank 0 only)."""

from __future__ import annotations

import logging
import sys
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
