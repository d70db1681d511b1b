"""The settings of sliced inference: the ``[slice]`` table of a config, ``predict --slice``.

::

    [slice]
    size = 512                 # or [h, w]: the tile size in image pixels
    overlap = 0.2              # or [h, w]: overlap ratio of neighbouring tiles
    full_image = false         # also predict the whole image (resized by the test pipeline)
    merge = "greedy_nmm"       # or "nms"
    match_metric = "ios"       # or "iou"
    match_threshold = 0.5
    class_agnostic = false
    batch_size = 8             # tiles per forward pass

The defaults of ``overlap``, ``merge``, ``match_metric``, ``match_threshold`` and
``class_agnostic`` are those of SAHI's ``get_sliced_prediction``.
"""

from __future__ import annotations

from typing import Any

import attrs

from core.data.slicing.merge import MATCH_METRICS, MERGE_METHODS, MatchMetric, MergeMethod
from core.errors import ConfigError

SLICE_KEYS = ("size", "overlap", "full_image", "merge", "match_metric", "match_threshold",
              "class_agnostic", "batch_size")


def _pair(value: Any, kind: type | tuple[type, ...], path: str) -> tuple[Any, Any]:
    """``value`` or ``[h, w]`` as an ``(h, w)`` pair of ``kind``."""
    items = list(value) if isinstance(value, list | tuple) else [value, value]
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, kind) for v in items):
        raise ConfigError(f"{path}: expected a number or [h, w], got {value!r}")
    return items[0], items[1]


@attrs.frozen
class SliceSettings:
    """How an image is cut into tiles and how the tiles' detections are merged.

    :ivar size: ``(h, w)`` of a tile in image pixels.
    :ivar overlap: ``(h, w)`` overlap ratios in ``[0, 1)``.
    :ivar full_image: also predict the whole image when it needs more than one tile.
    :ivar merge: ``"greedy_nmm"`` or ``"nms"``.
    :ivar match_metric: ``"ios"`` (intersection over the smaller box) or ``"iou"``.
    :ivar match_threshold: boxes match from this value on.
    :ivar class_agnostic: merge boxes of different classes too.
    :ivar batch_size: tiles per forward pass.
    """

    size: tuple[int, int]
    overlap: tuple[float, float] = (0.2, 0.2)
    full_image: bool = False
    merge: MergeMethod = "greedy_nmm"
    match_metric: MatchMetric = "ios"
    match_threshold: float = 0.5
    class_agnostic: bool = False
    batch_size: int = 8

    def __attrs_post_init__(self) -> None:
        if min(self.size) < 1:
            raise ConfigError(f"slice.size: expected positive sizes, got {list(self.size)}")
        if not all(0.0 <= r < 1.0 for r in self.overlap):
            raise ConfigError(f"slice.overlap: expected ratios in [0, 1), got "
                              f"{list(self.overlap)}")
        if self.merge not in MERGE_METHODS:
            raise ConfigError(f"slice.merge: expected one of {list(MERGE_METHODS)}, got "
                              f"{self.merge!r}")
        if self.match_metric not in MATCH_METRICS:
            raise ConfigError(f"slice.match_metric: expected one of {list(MATCH_METRICS)}, "
                              f"got {self.match_metric!r}")
        if self.batch_size < 1:
            raise ConfigError(f"slice.batch_size: expected >= 1, got {self.batch_size}")

    @classmethod
    def from_table(cls, table: Any, path: str = "slice") -> SliceSettings:
        """Read and check a ``[slice]`` table.

        :raises ConfigError: an unknown key, a missing ``size``, a value of the wrong type or
            out of range.
        """
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: expected a table, got {table!r}")
        unknown = sorted(set(table) - set(SLICE_KEYS))
        if unknown:
            raise ConfigError(f"{path}: unknown keys {unknown}; allowed: {list(SLICE_KEYS)}")
        if "size" not in table:
            raise ConfigError(f"{path}.size: required (the tile size in pixels)")
        values: dict[str, Any] = {"size": _pair(table["size"], int, f"{path}.size")}
        if "overlap" in table:
            values["overlap"] = tuple(float(v) for v in _pair(table["overlap"], (int, float),
                                                              f"{path}.overlap"))
        for key, kind in (("full_image", bool), ("class_agnostic", bool), ("merge", str),
                          ("match_metric", str), ("match_threshold", (int, float)),
                          ("batch_size", int)):
            if key not in table:
                continue
            value = table[key]
            if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
                raise ConfigError(f"{path}.{key}: expected {kind}, got {value!r}")
            values[key] = float(value) if key == "match_threshold" else value
        return cls(**values)
