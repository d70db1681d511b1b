"""Feature maps as heat-map images, alone or blended over the input image."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from PIL import Image

from core.visualization.canvas import as_image

CHANNEL_REDUCTIONS = ("squeeze_mean", "select_max", None)
#: Channels shown when ``channel_reduction`` is None and ``topk`` is not given.
DEFAULT_TOPK = 10
_COLORMAP = "jet"


def _normalize(maps: torch.Tensor) -> torch.Tensor:
    """Min-max scale each ``(H, W)`` map of ``(K, H, W)`` to ``[0, 1]`` (constant maps -> 0)."""
    flat = maps.flatten(1)
    low = flat.min(dim=1).values[:, None, None]
    high = flat.max(dim=1).values[:, None, None]
    return (maps - low) / (high - low).clamp_min(1e-12)


def _heatmap(single: torch.Tensor) -> np.ndarray:
    """``(H, W)`` values in [0, 1] -> ``(H, W, 3)`` uint8 colour-mapped image."""
    rgba = colormaps[_COLORMAP](single.numpy())
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def _resize_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``(K, H, W)`` to ``(K, *size)``."""
    if tuple(maps.shape[1:]) == size:
        return maps
    return F.interpolate(maps[None], size=size, mode="bilinear", align_corners=False)[0]


def _resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if image.shape[:2] == size:
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))


def _blend(tile: np.ndarray, background: np.ndarray | None, alpha: float) -> np.ndarray:
    if background is None:
        return tile
    mixed = background.astype(np.float32) * (1 - alpha) + tile.astype(np.float32) * alpha
    return mixed.round().astype(np.uint8)


def _check_arguments(
    featmap: Any,
    channel_reduction: str | None,
    topk: int,
    arrangement: tuple[int, int],
    resize_shape: tuple[int, int] | None,
    alpha: float,
) -> torch.Tensor:
    if isinstance(featmap, np.ndarray):
        featmap = torch.from_numpy(featmap)
    if not isinstance(featmap, torch.Tensor):
        raise TypeError(f"featmap must be a tensor or array, got {type(featmap).__name__}")
    if featmap.ndim != 3:
        raise ValueError(
            f"featmap must be (C, H, W), got shape {tuple(featmap.shape)}; "
            "select one image of a batch first"
        )
    if channel_reduction not in CHANNEL_REDUCTIONS:
        raise ValueError(
            f"channel_reduction must be one of {CHANNEL_REDUCTIONS}, got {channel_reduction!r}"
        )
    if channel_reduction is not None and topk is not None:
        raise ValueError(
            f"topk={topk} only applies without channel reduction; set channel_reduction=None "
            f"to show the top channels, or leave topk unset to show the {channel_reduction!r} map"
        )
    if topk is not None and (not isinstance(topk, int) or (topk < 1 and topk != -1)):
        raise ValueError(f"topk must be a positive int or -1, got {topk!r}")
    if len(arrangement) != 2 or min(arrangement) < 1:
        raise ValueError(f"arrangement must be (rows, cols) of positive ints, got {arrangement!r}")
    if resize_shape is not None and (len(resize_shape) != 2 or min(resize_shape) < 1):
        raise ValueError(f"resize_shape must be (h, w) of positive ints, got {resize_shape!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return featmap.detach().float().cpu()


def draw_featmap(
    featmap: torch.Tensor,
    overlaid_image: np.ndarray | None = None,
    channel_reduction: str | None = "squeeze_mean",
    topk: int | None = None,
    arrangement: tuple[int, int] = (2, 5),
    resize_shape: tuple[int, int] | None = None,
    alpha: float = 0.5,
) -> np.ndarray:
    """Render a ``(C, H, W)`` feature map as an ``(H', W', 3)`` uint8 RGB image.

    Size: the map is resized (bilinear) to ``resize_shape`` when given, else to the size of
    ``overlaid_image`` when given, else kept at ``(H, W)``; call that size ``(h, w)``.

    - ``channel_reduction="squeeze_mean"``: the mean over channels, as one heat map ``(h, w)``.
    - ``channel_reduction="select_max"``: the channel with the largest summed activation.
    - ``channel_reduction=None`` and ``topk > 0`` (10 when not given): the ``k = min(topk, C)``
      channels with the largest summed activation, each a heat map tile, laid out row by row
      in a grid of ``arrangement = (rows, cols)``; ``rows * cols`` must hold ``k`` tiles. The
      image is ``(ceil(k / cols) * h, min(k, cols) * w)``.
    - ``channel_reduction=None`` and ``topk=-1``: the map itself, which must have 1 channel
      (a heat map) or 3 channels (shown as an RGB image, each channel min-max scaled).

    ``topk`` may only be given when ``channel_reduction`` is ``None`` (``arrangement`` is only
    used then too). With ``overlaid_image`` (``(H0, W0, 3)`` uint8 RGB) every tile is blended
    over the (resized) image with weight ``alpha`` for the heat map.

    :raises ValueError: on a wrong shape, an unknown reduction, ``topk`` given together with a
        reduction, ``topk`` not positive or -1, ``topk=-1`` with a channel count other than 1
        or 3, or too small an arrangement.
    """
    maps = _check_arguments(featmap, channel_reduction, topk, arrangement, resize_shape, alpha)
    background = None if overlaid_image is None else as_image(overlaid_image)
    if resize_shape is not None:
        size = (int(resize_shape[0]), int(resize_shape[1]))
    elif background is not None:
        size = background.shape[:2]
    else:
        size = tuple(maps.shape[1:])
    if background is not None:
        background = _resize_image(background, size)
    channels = maps.shape[0]

    if channel_reduction == "squeeze_mean":
        chosen = maps.mean(dim=0, keepdim=True)
    elif channel_reduction == "select_max":
        best = int(maps.flatten(1).sum(dim=1).argmax())
        chosen = maps[best : best + 1]
    elif topk == -1:
        if channels not in (1, 3):
            raise ValueError(
                f"topk=-1 shows the feature map itself and needs 1 or 3 channels, got {channels}; "
                "set channel_reduction or a positive topk"
            )
        chosen = maps
    else:
        count = min(topk or DEFAULT_TOPK, channels)
        rows, cols = arrangement
        if rows * cols < count:
            raise ValueError(
                f"arrangement {tuple(arrangement)} holds {rows * cols} tiles but topk selects "
                f"{count}; enlarge arrangement or lower topk"
            )
        order = maps.flatten(1).sum(dim=1).topk(count).indices
        tiles = [
            _blend(_heatmap(m), background, alpha)
            for m in _normalize(_resize_maps(maps[order], size))
        ]
        return _grid(tiles, cols)

    chosen = _normalize(_resize_maps(chosen, size))
    if chosen.shape[0] == 3:
        tile = (chosen.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    else:
        tile = _heatmap(chosen[0])
    return _blend(tile, background, alpha)


def _grid(tiles: list[np.ndarray], cols: int) -> np.ndarray:
    """Lay equally sized ``(h, w, 3)`` tiles out row by row, ``cols`` per row (black filler)."""
    used_cols = min(len(tiles), cols)
    rows = math.ceil(len(tiles) / used_cols)
    height, width = tiles[0].shape[:2]
    canvas = np.zeros((rows * height, used_cols * width, 3), dtype=np.uint8)
    for index, tile in enumerate(tiles):
        row, col = divmod(index, used_cols)
        canvas[row * height : (row + 1) * height, col * width : (col + 1) * width] = tile
    return canvas
