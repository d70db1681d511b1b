"""Dense anchor boxes on every feature-map cell."""

from __future__ import annotations

import torch
from torch import Tensor

from core.errors import ConfigError, require_at_least

HALF = 0.5
MAX_CACHED_GRIDS = 32  # distinct input sizes remembered (multi-scale training has a few)


class AnchorGenerator:
    """Anchors of several scales and aspect ratios centred on each cell of each level.

    Level ``l`` has stride ``strides[l]``; its anchor sizes (square-root of the area, pixels)
    are ``octave_base_scale * strides[l] * 2 ** (k / scales_per_octave)`` for
    ``k = 0..scales_per_octave-1``, or ``sizes[l]`` when given. An aspect ratio is
    height / width. The anchors of one cell are ordered ratio-major then size (index
    ``r * num_sizes + s``). With ``base_sizes`` the anchors of level ``l`` are instead the
    given ``(w, h)`` pairs in that order (YOLO-style anchors; ``ratios`` and the scales are
    then unused). A level's anchors are ordered by cell (row-major) then by
    cell anchor, i.e. ``(H_l * W_l * A, 4)`` flattened from ``(H_l, W_l, A, 4)``.
    The cell ``(y, x)`` is centred at ``((x + center_offset) * stride, (y + center_offset) *
    stride)``.

    :param strides: stride of each level in pixels.
    :param ratios: aspect ratios (height / width), shared by all levels.
    :param octave_base_scale: anchor size of the first scale in units of the stride.
    :param scales_per_octave: number of sizes per octave.
    :param sizes: explicit anchor sizes per level (overrides the octave scales).
    :param round_base_anchors: round the cell anchors' corners to whole pixels (torchvision).
    :param center_offset: cell-centre offset in units of the stride (0 = top-left corner).
    :param base_sizes: explicit ``(w, h)`` anchor sizes in pixels per level,
        ``base_sizes[l][a] = [w, h]`` (overrides ``ratios``, the scales and ``sizes``).
    """

    def __init__(
        self,
        strides: tuple[int, ...] = (8, 16, 32, 64, 128),
        ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
        octave_base_scale: float = 4.0,
        scales_per_octave: int = 3,
        sizes: list[list[float]] | None = None,
        round_base_anchors: bool = False,
        center_offset: float = 0.0,
        base_sizes: list[list[list[float]]] | None = None,
    ) -> None:
        if not strides or any(s <= 0 for s in strides):
            raise ConfigError(f"strides: expected positive values, got {list(strides)}")
        if not ratios or any(r <= 0 for r in ratios):
            raise ConfigError(f"ratios: expected positive values, got {list(ratios)}")
        if sizes is not None and len(sizes) != len(strides):
            raise ConfigError(
                f"sizes: expected one list per level ({len(strides)}), got {len(sizes)}"
            )
        require_at_least("scales_per_octave", scales_per_octave, 1)
        self.strides = [int(s) for s in strides]
        self.ratios = [float(r) for r in ratios]
        self.center_offset = center_offset
        if sizes is None:
            octave = [2 ** (k / scales_per_octave) for k in range(scales_per_octave)]
            sizes = [[octave_base_scale * s * o for o in octave] for s in self.strides]
        self.sizes = [[float(v) for v in level] for level in sizes]
        if base_sizes is None:
            self.base_anchors = [self._cell_anchors(level) for level in self.sizes]
        else:
            self.base_anchors = self._explicit_anchors(base_sizes)
        if round_base_anchors:
            self.base_anchors = [a.round() for a in self.base_anchors]
        # (featmap sizes, device) -> anchors; the grid depends only on these.
        self._cache: dict[tuple[tuple[tuple[int, int], ...], str], list[Tensor]] = {}

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    @property
    def num_base_priors(self) -> list[int]:
        """Anchors per cell ``A_l`` of each level."""
        return [len(a) for a in self.base_anchors]

    def _cell_anchors(self, sizes: list[float]) -> Tensor:
        """Anchors of one cell centred at 0: ``(len(ratios) * len(sizes), 4)`` xyxy."""
        scales = torch.tensor(sizes, dtype=torch.float32)
        ratios = torch.tensor(self.ratios, dtype=torch.float32)
        h_ratios = torch.sqrt(ratios)
        w_ratios = 1 / h_ratios
        ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
        hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
        return torch.stack([-ws, -hs, ws, hs], dim=1) * HALF

    def _explicit_anchors(self, base_sizes: list[list[list[float]]]) -> list[Tensor]:
        """Per level ``(A_l, 4)`` xyxy anchors centred at 0 from ``(w, h)`` pairs."""
        if len(base_sizes) != len(self.strides):
            raise ConfigError(f"base_sizes: expected one list per level ({len(self.strides)}), "
                              f"got {len(base_sizes)}")
        anchors = []
        for level, pairs in enumerate(base_sizes):
            if not pairs or any(len(p) != 2 or min(p) <= 0 for p in pairs):
                raise ConfigError(f"base_sizes[{level}]: expected positive [w, h] pairs, "
                                  f"got {pairs}")
            wh = torch.tensor(pairs, dtype=torch.float32)
            anchors.append(torch.cat([-wh, wh], dim=1) * HALF)
        return anchors

    def single_level_grid_priors(
        self, featmap_size: tuple[int, int], level: int, device: torch.device | str = "cpu"
    ) -> Tensor:
        """Anchors of level ``level`` on a ``(H, W)`` map: ``(H * W * A_l, 4)`` xyxy pixels."""
        height, width = featmap_size
        stride = self.strides[level]
        shift_x = (
            torch.arange(width, device=device, dtype=torch.float32) + self.center_offset
        ) * stride
        shift_y = (
            torch.arange(height, device=device, dtype=torch.float32) + self.center_offset
        ) * stride
        yy, xx = torch.meshgrid(shift_y, shift_x, indexing="ij")
        xx, yy = xx.reshape(-1), yy.reshape(-1)
        shifts = torch.stack([xx, yy, xx, yy], dim=1)
        base = self.base_anchors[level].to(device)
        return (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4)

    def grid_priors(
        self, featmap_sizes: list[tuple[int, int]], device: torch.device | str = "cpu"
    ) -> list[Tensor]:
        """Anchors of every level: list of ``(H_l * W_l * A_l, 4)`` xyxy pixel tensors.

        :raises ValueError: when the number of maps differs from the number of strides.
        """
        if len(featmap_sizes) != self.num_levels:
            raise ValueError(
                f"AnchorGenerator has {self.num_levels} strides but got {len(featmap_sizes)} maps"
            )
        key = (tuple((int(h), int(w)) for h, w in featmap_sizes), str(device))
        if key not in self._cache:
            if len(self._cache) >= MAX_CACHED_GRIDS:
                self._cache.clear()
            self._cache[key] = [
                self.single_level_grid_priors(size, level, device)
                for level, size in enumerate(key[0])
            ]
        return self._cache[key]
