"""Counting (and reporting) what a dataset leaves out of bad input."""

from __future__ import annotations

import logging
from collections import Counter

from core.errors import DataError

LOGGER = logging.getLogger("plugdet.data")


class SkipLog:
    """Counts skipped items by reason; logs the first messages of each reason.

    :param source: what is being loaded (class and file), prefixed to summaries.
    :param strict: raise :class:`DataError` on the first problem instead of skipping.
    :param max_messages: warnings logged per reason before only counting.
    """

    def __init__(self, source: str, strict: bool, max_messages: int = 5) -> None:
        self.source = source
        self.strict = strict
        self.max_messages = max_messages
        self.counts: Counter[str] = Counter()
        self._replaced: set[int] = set()
        #: the keys (files) already named, by repair reason
        self._repaired: dict[str, set[str]] = {}

    def skip(self, reason: str, message: str) -> None:
        """Record one skipped item; ``message`` names the file and the sample."""
        if self.strict:
            raise DataError(f"{message} (strict = true)")
        self.counts[reason] += 1
        if self.counts[reason] <= self.max_messages:
            LOGGER.warning("%s; skipped", message)
        elif self.counts[reason] == self.max_messages + 1:
            LOGGER.warning("%s: further %r problems are only counted", self.source, reason)

    def replaced(self, reason: str, key: int, message: str) -> None:
        """Record a sample that failed at load time and was replaced by another; each ``key``
        (sample index) is counted and logged once, however often it is loaded again."""
        if key in self._replaced:
            return
        self._replaced.add(key)
        self.counts[reason] += 1
        LOGGER.warning("%s; replaced by another sample (%s: %d so far)", message, reason,
                       self.counts[reason])

    def note_repair(self, reason: str, key: str, message: str) -> None:
        """Log an item that was fixed rather than left out (a clipped box), once per ``key``
        (the file) and for the first ``max_messages`` keys of ``reason``; the caller counts it
        (``dataset.repaired``)."""
        named = self._repaired.setdefault(reason, set())
        if key in named or len(named) > self.max_messages:
            return
        named.add(key)
        if len(named) <= self.max_messages:
            LOGGER.warning("%s", message)
        else:
            LOGGER.warning("%s: further files with %r are only counted", self.source, reason)

    def omit(self, reason: str, message: str) -> None:
        """Record an item left out on purpose by a filter option (never an error)."""
        self.counts[reason] += 1
        LOGGER.debug("%s; left out", message)

    def summarize(self) -> None:
        """Log the counts (once loading is done)."""
        if self.counts:
            details = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.counts.items()))
            LOGGER.warning("%s: skipped %s", self.source, details)

    def as_dict(self) -> dict[str, int]:
        """Counts by reason."""
        return dict(self.counts)
