"""Text files that list one entry per line (VOC split files, YOLO image lists)."""

from __future__ import annotations

from pathlib import Path

from core.errors import DataError


def read_list_file(path: Path, kind: str) -> list[str]:
    """The non-blank lines of ``path``, stripped, read as UTF-8 (a byte-order mark dropped).

    :param kind: what the file is, named in the error (``"split file"``).
    :raises DataError: if the file is not UTF-8 text.
    """
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: {kind} is not UTF-8 text ({exc})") from exc
    return [entry for entry in (line.strip() for line in lines) if entry]
