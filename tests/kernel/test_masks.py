"""PolygonMasks (core/masks.py) against hand-computed cases, PIL drawings and pycocotools."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from core.masks import PolygonMasks, clip_polygon, polygon_area


def square(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.asarray([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)


def star(cx: float, cy: float, radius: float) -> np.ndarray:
    return np.asarray([(cx + (radius if k % 2 == 0 else radius * 0.45) * math.cos(k * math.pi / 5),
                        cy + (radius if k % 2 == 0 else radius * 0.45) * math.sin(k * math.pi / 5))
                       for k in range(10)], dtype=np.float32)


def vertex_set(points: np.ndarray) -> set[tuple[float, float]]:
    return {(round(float(x), 4), round(float(y), 4)) for x, y in points}


def test_clip_cuts_a_triangle_by_a_box_at_the_hand_computed_vertices():
    triangle = np.asarray([[0, 0], [10, 0], [0, 10]], dtype=np.float32)
    clipped = clip_polygon(triangle, (0, 0, 6, 6))
    # the square [0, 6]^2 less the corner x + y > 10: the corner triangle has area 2
    assert vertex_set(clipped) == {(0, 0), (6, 0), (6, 4), (4, 6), (0, 6)}
    assert polygon_area(clipped) == pytest.approx(34.0)
    assert len(clip_polygon(triangle, (20, 20, 30, 30))) == 0


def test_clip_drops_parts_outside_and_keeps_instances():
    masks = PolygonMasks([[square(2, 2, 8, 8), square(20, 20, 30, 30)], [square(-5, -5, 4, 3)]],
                         (10, 12))
    clipped = masks.clip()
    assert len(clipped) == 2 and len(clipped.polygons[0]) == 1
    assert vertex_set(clipped.polygons[0][0]) == vertex_set(square(2, 2, 8, 8))
    assert vertex_set(clipped.polygons[1][0]) == vertex_set(square(0, 0, 4, 3))
    gone = masks.clip((100, 100, 110, 110))
    assert [len(parts) for parts in gone.polygons] == [0, 0]
    assert gone.areas().tolist() == [0.0, 0.0]
    assert gone.bounding_boxes().tolist() == [[0, 0, 0, 0], [0, 0, 0, 0]]


def test_crop_clips_then_moves_the_origin_to_the_corner():
    masks = PolygonMasks([[square(0, 0, 10, 10)]], (20, 20))
    cropped = masks.crop((4, 6, 14, 11))
    assert cropped.shape == (5, 10)
    assert vertex_set(cropped.polygons[0][0]) == vertex_set(square(0, 0, 6, 4))


@pytest.mark.parametrize(("direction", "expected"), [
    ("horizontal", [[9, 2], [7, 2], [7, 5], [9, 5]]),
    ("vertical", [[1, 6], [3, 6], [3, 3], [1, 3]]),
    ("diagonal", [[9, 6], [7, 6], [7, 3], [9, 3]]),
])
def test_flip_mirrors_inside_the_frame(direction, expected):
    masks = PolygonMasks([[square(1, 2, 3, 5)]], (8, 10))
    flipped = masks.flip(direction)
    np.testing.assert_allclose(flipped.polygons[0][0], expected)
    assert flipped.shape == (8, 10)
    np.testing.assert_allclose(flipped.flip(direction).polygons[0][0], square(1, 2, 3, 5))


def test_flip_refuses_an_unknown_direction():
    with pytest.raises(ValueError, match="unknown flip direction"):
        PolygonMasks([[square(1, 2, 3, 5)]], (8, 10)).flip("sideways")


def test_rescale_and_translate_move_vertices_and_set_the_frame():
    masks = PolygonMasks([[square(1, 2, 3, 5)]], (8, 10))
    scaled = masks.rescale(2.0, 0.5, (4, 20))
    np.testing.assert_allclose(scaled.polygons[0][0], square(2, 1, 6, 2.5))
    assert scaled.shape == (4, 20) and scaled.polygons[0][0].dtype == np.float32
    moved = masks.translate(3, -1, (9, 14))
    np.testing.assert_allclose(moved.polygons[0][0], square(4, 1, 6, 4))
    assert moved.shape == (9, 14)
    assert masks.polygons[0][0][0].tolist() == [1, 2]  # the original is untouched


def test_to_tensor_fills_the_pixels_a_pil_rectangle_covers():
    # PIL's rectangle [2, 3, 6, 8] paints columns 2..6 and rows 3..8 inclusive: the pixels of
    # the area [2, 7] x [3, 9]
    drawn = Image.new("L", (12, 10))
    ImageDraw.Draw(drawn).rectangle([2, 3, 6, 8], fill=1)
    bitmap = PolygonMasks([[square(2, 3, 7, 9)]], (10, 12)).to_tensor()
    assert bitmap.shape == (1, 10, 12) and bitmap.dtype == torch.bool
    assert torch.equal(bitmap[0], torch.from_numpy(np.asarray(drawn).astype(bool)))


def test_to_tensor_agrees_with_a_pil_drawn_star():
    points = star(40, 30, 22)
    drawn = Image.new("L", (80, 64))
    ImageDraw.Draw(drawn).polygon([tuple(p) for p in points.tolist()], fill=1)
    reference = np.asarray(drawn).astype(bool)
    bitmap = PolygonMasks([[points]], (64, 80)).to_tensor()[0].numpy()
    iou = (bitmap & reference).sum() / (bitmap | reference).sum()
    assert iou > 0.9
    # PIL fills the boundary pixels too: the raster lies (nearly) inside its drawing
    assert (bitmap & ~reference).sum() <= 0.02 * bitmap.sum()
    assert abs(int(bitmap.sum()) - polygon_area(points)) < 0.06 * polygon_area(points)


def test_two_parts_rasterise_to_their_union_and_empty_instances_to_nothing():
    masks = PolygonMasks([[square(0, 0, 2, 2), square(4, 4, 6, 6)], []], (8, 8))
    bitmap = masks.to_tensor()
    assert bitmap[0].sum() == 8 and bitmap[1].sum() == 0
    assert bitmap[0, :2, :2].all() and bitmap[0, 4:6, 4:6].all()
    rles = masks.to_rle()
    np.testing.assert_array_equal(mask_utils.decode(rles).transpose(2, 0, 1), bitmap.numpy())


def test_crop_and_resize_rasterises_the_part_in_the_box_on_the_grid():
    masks = PolygonMasks([[square(10, 10, 20, 20)], [square(0, 0, 40, 40)]], (40, 40))
    targets = masks.crop_and_resize(torch.tensor([[10.0, 10, 30, 30], [0, 0, 20, 40]]),
                                    torch.tensor([0, 1]), 4)
    expected = torch.zeros((4, 4))
    expected[:2, :2] = 1  # the square is the top-left quarter of the box
    assert targets.dtype == torch.float32 and targets.shape == (2, 4, 4)
    assert torch.equal(targets[0], expected)
    assert torch.equal(targets[1], torch.ones((4, 4)))  # the box lies inside instance 1
    rectangular = masks.crop_and_resize(torch.tensor([[10.0, 10, 30, 30]]), torch.tensor([0]),
                                        (2, 4))
    assert torch.equal(rectangular[0], torch.tensor([[1.0, 1, 0, 0], [0, 0, 0, 0]]))


def test_areas_match_pycocotools_on_aligned_shapes_and_come_close_on_others():
    masks = PolygonMasks([[square(2, 3, 7, 9)], [square(1, 1, 3, 3), square(5, 5, 8, 6)],
                          [star(40, 30, 20)]], (64, 80))
    areas = masks.areas()
    pixel_areas = mask_utils.area(masks.to_rle())
    assert areas[:2].tolist() == [30.0, 7.0]
    assert pixel_areas[:2].tolist() == [30, 7]
    assert areas[2].item() == pytest.approx(float(pixel_areas[2]), rel=0.05)


def test_bounding_boxes_selection_and_cat():
    masks = PolygonMasks([[square(1, 2, 3, 5)], [square(4, 4, 6, 7), square(0, 6, 1, 8)]],
                         (10, 10))
    assert masks.bounding_boxes().tolist() == [[1, 2, 3, 5], [0, 4, 6, 8]]
    assert masks[torch.tensor([False, True])].polygons == masks.polygons[1:]
    assert masks[1].polygons == masks.polygons[1:] and len(masks[0:0]) == 0
    joined = PolygonMasks.cat([masks, masks[0]])
    assert len(joined) == 3 and joined.shape == (10, 10)
    assert joined.nbytes() == masks.nbytes() + masks[0].nbytes() == 4 * 8 * 4
