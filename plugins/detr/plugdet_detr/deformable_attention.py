"""Multi-scale deformable attention written with ``torch.nn.functional.grid_sample`` (no
compiled op): each query reads a few bilinearly sampled points per head and level around its
reference box and sums them with softmax weights."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def multi_scale_deformable_attention(value: Tensor, spatial_shapes: Sequence[tuple[int, int]],
                                     sampling_locations: Tensor,
                                     attention_weights: Tensor) -> Tensor:
    """Weighted sum of bilinear samples of every level.

    A location ``(x, y)`` in ``[0, 1]`` of a ``H x W`` level is the pixel position
    ``(x W - 0.5, y H - 0.5)`` (pixel centres at half-integers, ``align_corners=False``);
    samples outside the map read zeros.

    :param value: ``(B, sum H_l W_l, heads, D)`` the levels' values, flattened row-major and
        concatenated in the order of ``spatial_shapes``.
    :param spatial_shapes: ``(H_l, W_l)`` of each level.
    :param sampling_locations: ``(B, Q, heads, L, P, 2)`` ``(x, y)`` in ``[0, 1]``.
    :param attention_weights: ``(B, Q, heads, L, P)`` weights (softmax over ``L * P``).
    :returns: ``(B, Q, heads * D)``.
    """
    batch, _, heads, dim = value.shape
    _, queries, _, levels, points, _ = sampling_locations.shape
    per_level = torch.split(value, [h * w for h, w in spatial_shapes], dim=1)
    grids = 2 * sampling_locations - 1
    samples = []
    for level, (height, width) in enumerate(spatial_shapes):
        # (B, HW, heads, D) -> (B heads, D, H, W)
        level_value = per_level[level].permute(0, 2, 3, 1).reshape(batch * heads, dim, height,
                                                                  width)
        # (B, Q, heads, P, 2) -> (B heads, Q, P, 2)
        grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        samples.append(F.grid_sample(level_value, grid, mode="bilinear", padding_mode="zeros",
                                     align_corners=False))  # (B heads, D, Q, P)
    weights = attention_weights.transpose(1, 2).reshape(batch * heads, 1, queries,
                                                        levels * points)
    stacked = torch.stack(samples, dim=-2).flatten(-2)  # (B heads, D, Q, L P)
    output = (stacked * weights).sum(-1).reshape(batch, heads * dim, queries)
    return output.transpose(1, 2)


class MSDeformableAttention(nn.Module):
    """Deformable cross-attention of queries with reference boxes into a multi-level memory.

    The sampling points of a query with reference box ``(cx, cy, w, h)`` are
    ``(cx, cy) + offset / P * (w, h) / 2``; with reference points ``(x, y)`` they are
    ``(x, y) + offset / (W_l, H_l)``.

    :param embed_dim: channels ``C`` of queries and memory.
    :param num_heads: attention heads (``C`` divisible by it).
    :param num_levels: memory levels ``L``.
    :param num_points: sampling points ``P`` per head and level.
    """

    def __init__(self, embed_dim: int = 256, num_heads: int = 8, num_levels: int = 3,
                 num_points: int = 4) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.num_levels, self.num_points = num_heads, num_levels, num_points
        total = num_heads * num_levels * num_points
        self.sampling_offsets = nn.Linear(embed_dim, total * 2)
        self.attention_weights = nn.Linear(embed_dim, total)
        self.value_proj = nn.Linear(embed_dim, embed_dim)
        self.output_proj = nn.Linear(embed_dim, embed_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Offsets start on rays at evenly spread angles, point ``k`` at distance ``k``; equal
        attention weights; Xavier projections."""
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.num_heads, dtype=torch.float32) * (2 * math.pi / self.num_heads)
        directions = torch.stack([angles.cos(), angles.sin()], -1)
        directions = directions / directions.abs().max(-1, keepdim=True).values
        scale = torch.arange(1, self.num_points + 1, dtype=torch.float32).reshape(1, 1, -1, 1)
        grid = directions.reshape(self.num_heads, 1, 1, 2).tile(1, self.num_levels,
                                                                 self.num_points, 1) * scale
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for proj in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def forward(self, query: Tensor, reference: Tensor, value: Tensor,
                spatial_shapes: Sequence[tuple[int, int]]) -> Tensor:
        """:param query: ``(B, Q, C)``.
        :param reference: ``(B, Q, 4)`` boxes ``cx, cy, w, h`` or ``(B, Q, 2)`` points, in
            ``[0, 1]`` of the padded input.
        :param value: ``(B, sum H_l W_l, C)`` the flattened memory.
        :param spatial_shapes: ``(H_l, W_l)`` of each level.
        :returns: ``(B, Q, C)``."""
        batch, queries, _ = query.shape
        heads, levels, points = self.num_heads, self.num_levels, self.num_points
        values = self.value_proj(value).reshape(batch, value.shape[1], heads, -1)
        offsets = self.sampling_offsets(query).reshape(batch, queries, heads, levels, points, 2)
        weights = self.attention_weights(query).reshape(batch, queries, heads, levels * points)
        weights = weights.softmax(-1).reshape(batch, queries, heads, levels, points)
        if reference.shape[-1] == 4:
            centre = reference[:, :, None, None, None, :2]
            size = reference[:, :, None, None, None, 2:]
            locations = centre + offsets / points * size * 0.5
        elif reference.shape[-1] == 2:
            normaliser = reference.new_tensor([(w, h) for h, w in spatial_shapes])
            locations = reference[:, :, None, None, None, :] + offsets / normaliser[:, None]
        else:
            raise ValueError(f"reference: expected 2 or 4 values per query, got "
                             f"{reference.shape[-1]}")
        output = multi_scale_deformable_attention(values, spatial_shapes, locations, weights)
        projected: Tensor = self.output_proj(output)
        return projected
