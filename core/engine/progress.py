"""A one-line progress bar for terminals (redrawn in place with a carriage return)."""

from __future__ import annotations

import shutil
from typing import TextIO

BAR_WIDTH = 25


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (days folded into hours)."""
    seconds = max(int(seconds), 0)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressBar:
    """``[#####-----] 12/100 text``, redrawn on every :meth:`update`, cut to the terminal width.

    :param stream: where to draw (a terminal).
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.active = False

    def update(self, done: int, total: int, text: str) -> None:
        """Redraw with ``done`` of ``total`` steps and a status ``text``."""
        filled = BAR_WIDTH * done // max(total, 1)
        line = f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {done}/{total} {text}"
        width = shutil.get_terminal_size().columns
        self.stream.write("\r" + line[: width - 1].ljust(width - 1))
        self.stream.flush()
        self.active = True

    def clear(self) -> None:
        """Erase the bar so that a log line can be printed in its place."""
        if self.active:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.active = False

    def finish(self) -> None:
        """Keep the bar as drawn and move to a new line."""
        if self.active:
            self.stream.write("\n")
            self.stream.flush()
            self.active = False
