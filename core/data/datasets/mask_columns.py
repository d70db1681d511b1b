"""Instance polygons as three flat arrays, the ragged mask columns of a
:class:`~core.data.datasets.records.RecordIndex`.

Row ``i`` (an instance) owns the polygons ``part_ends[i-1]:part_ends[i]``; polygon ``j`` owns
the vertices ``points[vertex_ends[j-1]:vertex_ends[j]]`` (``ends[-1]`` reads as 0). An
instance without a mask owns zero polygons.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

#: the polygons of one instance: ``(K, 2)`` float32 arrays of ``x, y`` pixels.
InstancePolygons = list[np.ndarray]


def _start(ends: np.ndarray, index: int) -> int:
    return int(ends[index - 1]) if index > 0 else 0


@attrs.define
class MaskColumns:
    """The polygons of ``M`` instances.

    :ivar part_ends: ``(M,)`` int64 cumulative polygon count per instance.
    :ivar vertex_ends: ``(P,)`` int64 cumulative vertex count per polygon.
    :ivar points: ``(V, 2)`` float32 vertices, ``x, y`` in pixels.
    """

    part_ends: np.ndarray
    vertex_ends: np.ndarray
    points: np.ndarray

    @classmethod
    def pack(cls, instances: Sequence[InstancePolygons]) -> MaskColumns:
        """The columns of ``instances`` (in their order)."""
        parts = [np.asarray(p, dtype=np.float32).reshape(-1, 2)
                 for instance in instances for p in instance]
        return cls(
            part_ends=np.cumsum([len(instance) for instance in instances], dtype=np.int64),
            vertex_ends=np.cumsum([len(p) for p in parts], dtype=np.int64),
            points=np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.float32),
        )

    def named(self, prefix: str) -> dict[str, np.ndarray]:
        """The arrays as ``{prefix}mask_part_ends``, ``{prefix}mask_vertex_ends`` and
        ``{prefix}mask_points`` (the names of the record index's arguments)."""
        return {f"{prefix}mask_part_ends": self.part_ends,
                f"{prefix}mask_vertex_ends": self.vertex_ends,
                f"{prefix}mask_points": self.points}

    def check(self, rows: int, name: str) -> None:
        """Raise ``ValueError`` unless the columns hold ``rows`` instances consistently."""
        parts = int(self.part_ends[-1]) if len(self.part_ends) else 0
        vertices = int(self.vertex_ends[-1]) if len(self.vertex_ends) else 0
        if len(self.part_ends) != rows or parts != len(self.vertex_ends) \
                or vertices != len(self.points):
            raise ValueError(f"RecordIndex: {name} mask columns do not match {rows} instances "
                             f"({len(self.part_ends)} instances, {len(self.vertex_ends)} "
                             f"polygons of {parts}, {len(self.points)} vertices of {vertices})")

    def instance(self, row: int) -> InstancePolygons:
        """Copies of the polygons of instance ``row``."""
        first, last = _start(self.part_ends, row), int(self.part_ends[row])
        return [self.points[_start(self.vertex_ends, j):int(self.vertex_ends[j])].copy()
                for j in range(first, last)]

    def rows(self, span: slice) -> list[InstancePolygons]:
        """Copies of the polygons of the instances in ``span`` (a ``start:stop`` slice)."""
        return [self.instance(row) for row in range(span.start, span.stop)]
