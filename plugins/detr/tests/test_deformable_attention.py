"""Multi-scale deformable attention against a direct loop over sampling points with bilinear
sampling written out (zero padding, pixel centres at half-integers)."""

import math

import torch
from plugdet_detr.deformable_attention import (
    MSDeformableAttention,
    multi_scale_deformable_attention,
)

SHAPES = [(5, 7), (3, 4)]  # two levels of different aspect
HEADS, DIM, QUERIES, POINTS, BATCH = 2, 3, 4, 3, 2


def bilinear(level, x, y):
    """``level (D, H, W)`` read at ``x, y`` in [0, 1] (align_corners=False, zeros outside)."""
    _, height, width = level.shape
    px, py = x * width - 0.5, y * height - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    value = torch.zeros(level.shape[0], dtype=level.dtype)
    for xi, wx in ((x0, x0 + 1 - px), (x0 + 1, px - x0)):
        for yi, wy in ((y0, y0 + 1 - py), (y0 + 1, py - y0)):
            if 0 <= xi < width and 0 <= yi < height:
                value += wx * wy * level[:, yi, xi]
    return value


def by_loop(value, shapes, locations, weights):
    starts = [0]
    for h, w in shapes:
        starts.append(starts[-1] + h * w)
    out = torch.zeros(BATCH, QUERIES, HEADS * DIM, dtype=value.dtype)
    for b in range(BATCH):
        for q in range(QUERIES):
            for m in range(HEADS):
                total = torch.zeros(DIM, dtype=value.dtype)
                for lvl, (h, w) in enumerate(shapes):
                    level = value[b, starts[lvl]:starts[lvl + 1], m].T.reshape(DIM, h, w)
                    for p in range(POINTS):
                        x, y = (float(v) for v in locations[b, q, m, lvl, p])
                        total += weights[b, q, m, lvl, p] * bilinear(level, x, y)
                out[b, q, m * DIM:(m + 1) * DIM] = total
    return out


def test_grid_sample_version_equals_the_direct_loop():
    generator = torch.Generator().manual_seed(0)
    num_values = sum(h * w for h, w in SHAPES)
    value = torch.randn(BATCH, num_values, HEADS, DIM, generator=generator, dtype=torch.float64)
    # locations partly outside [0, 1] so that the zero padding matters
    locations = torch.rand(BATCH, QUERIES, HEADS, len(SHAPES), POINTS, 2, generator=generator,
                           dtype=torch.float64) * 1.4 - 0.2
    weights = torch.rand(BATCH, QUERIES, HEADS, len(SHAPES) * POINTS, generator=generator,
                         dtype=torch.float64).softmax(-1).reshape(
        BATCH, QUERIES, HEADS, len(SHAPES), POINTS)
    fast = multi_scale_deformable_attention(value, SHAPES, locations, weights)
    assert fast.shape == (BATCH, QUERIES, HEADS * DIM)
    torch.testing.assert_close(fast, by_loop(value, SHAPES, locations, weights),
                               rtol=1e-10, atol=1e-10)


def test_module_samples_around_the_reference_box():
    """With zero offsets every point reads the box centre; the output is then the projected
    value at the centre, whatever the attention weights."""
    torch.manual_seed(0)
    attn = MSDeformableAttention(embed_dim=4, num_heads=2, num_levels=1, num_points=2).double()
    torch.nn.init.zeros_(attn.sampling_offsets.bias)
    torch.nn.init.normal_(attn.attention_weights.weight)
    value = torch.randn(1, 6 * 8, 4, dtype=torch.float64)
    query = torch.randn(1, 1, 4, dtype=torch.float64)
    # the centre of cell (row 2, col 5) of a 6 x 8 map
    box = torch.tensor([[[5.5 / 8, 2.5 / 6, 0.3, 0.4]]], dtype=torch.float64)
    out = attn(query, box, value, [(6, 8)])
    expected = attn.output_proj(attn.value_proj(value)[:, 2 * 8 + 5])
    torch.testing.assert_close(out[0], expected, rtol=1e-10, atol=1e-10)
