"""A dataset's parsed index saved on disk, so that building it again skips the parse.

After a dataset has parsed its annotations, the arrays of its
:class:`~core.data.datasets.records.RecordIndex` are saved with its classes, label mapping
and skip/repair counts as one ``.npz`` file (no pickle; strings as JSON in a uint8 array)
in the cache folder (``$PLUGDET_CACHE_DIR``, default ``~/.cache/plugdet/index``).

The file is named by the sha256 of a key: the dataset class, the options that change the
index, :data:`FORMAT_VERSION` and the identity (absolute path, size, mtime in ns) of the
annotation files read. The image files a parse examined (``check_images``) are known only
after parsing, so their paths are stored in the file with a digest of their identities; a
load stats each of them again and misses when any changed. Any change of a keyed file or
option thus misses the cache and parses again; an unreadable cache file is ignored with a
warning and rewritten; an unwritable cache folder only warns.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from core.data.datasets.records import RecordIndex
from core.data.datasets.skips import LOGGER

#: bump when the parse or the stored arrays change meaning.
FORMAT_VERSION = 2
CACHE_ENV = "PLUGDET_CACHE_DIR"
DEFAULT_DIR = "~/.cache/plugdet/index"
#: the array of the JSON metadata in the ``.npz`` file.
META_KEY = "meta"

#: ``(absolute path, size, mtime_ns)``; ``(path, -1, -1)`` for a file that cannot be stat'ed.
Identity = tuple[str, int, int]


def cache_dir() -> Path:
    """The cache folder: ``$PLUGDET_CACHE_DIR`` or ``~/.cache/plugdet/index``."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_DIR).expanduser()


def examine(path: str | os.PathLike[str]) -> tuple[Identity, bool]:
    """The file's identity and whether it is a regular file, from one ``stat``."""
    absolute = os.path.abspath(path)
    try:
        st = os.stat(absolute)
    except (OSError, ValueError):
        return (absolute, -1, -1), False
    return (absolute, st.st_size, st.st_mtime_ns), stat.S_ISREG(st.st_mode)


def file_identity(path: str | os.PathLike[str]) -> Identity:
    """What tells a file's version apart: absolute path, size and mtime (ns)."""
    return examine(path)[0]


def identities_digest(identities: Iterable[Identity]) -> str:
    """sha256 of ``identities`` in their order."""
    digest = hashlib.sha256()
    for path, size, mtime in identities:
        digest.update(f"{path}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


@attrs.define
class CachedIndex:
    """What a dataset keeps of its parse.

    :ivar index: the records.
    :ivar classes: class names. :ivar label_to_cat_id: label -> category id.
    :ivar skipped: counts of what the parse left out; ``repaired``: of what it fixed.
    """

    index: RecordIndex
    classes: tuple[str, ...]
    label_to_cat_id: dict[int, int]
    skipped: dict[str, int]
    repaired: dict[str, int]


def _json_array(value: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(value).encode("utf-8", "surrogateescape"), dtype=np.uint8)


class IndexCache:
    """The cache file of one dataset configuration.

    :param kind: the dataset class name.
    :param options: the options that change the index (JSON-serialisable).
    :param files: the annotation files read (their identities enter the key).
    """

    def __init__(self, kind: str, options: dict[str, Any],
                 files: Iterable[str | os.PathLike[str]]) -> None:
        key = json.dumps([FORMAT_VERSION, kind, options, [file_identity(f) for f in files]],
                         sort_keys=True)
        name = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
        self.path = cache_dir() / f"{kind}-{name}.npz"

    def load(self) -> CachedIndex | None:
        """The cached parse; ``None`` when there is none, the image files it examined changed,
        or the file is unreadable (warned)."""
        if not self.path.is_file():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            meta = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8", "surrogateescape"))
            if meta["version"] != FORMAT_VERSION:
                raise ValueError(f"format version {meta['version']}, expected {FORMAT_VERSION}")
            if identities_digest(map(file_identity, meta["watched"])) != meta["watched_digest"]:
                LOGGER.info("%s: image files changed since the index was cached", self.path)
                return None
            return CachedIndex(
                index=RecordIndex(**arrays),
                classes=tuple(str(name) for name in meta["classes"]),
                label_to_cat_id={int(k): int(v) for k, v in meta["label_to_cat_id"]},
                skipped={str(k): int(v) for k, v in meta["skipped"].items()},
                repaired={str(k): int(v) for k, v in meta["repaired"].items()},
            )
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            LOGGER.warning("%s: unreadable index cache (%s); parsing again and rewriting it",
                           self.path, exc)
            return None

    def save(self, cached: CachedIndex, watched: list[Identity]) -> None:
        """Write ``cached`` (atomically); ``watched``: the image files the parse examined.
        A folder that cannot be written only warns."""
        meta = {
            "version": FORMAT_VERSION,
            "classes": list(cached.classes),
            "label_to_cat_id": sorted(cached.label_to_cat_id.items()),
            "skipped": cached.skipped,
            "repaired": cached.repaired,
            "watched": [path for path, _, _ in watched],
            "watched_digest": identities_digest(watched),
        }
        tmp = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.path.parent, suffix=".tmp",
                                             delete=False) as handle:
                tmp = handle.name
                arrays: dict[str, Any] = {**cached.index.arrays(), META_KEY: _json_array(meta)}
                np.savez(handle, **arrays)
            os.replace(tmp, self.path)
        except OSError as exc:
            LOGGER.warning("%s: cannot write the index cache (%s)", self.path, exc)
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
