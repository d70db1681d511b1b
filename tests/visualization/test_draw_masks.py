"""Instance masks in pictures: bitmaps blended into exactly their pixels, polygon outlines on
the polygon, and both in the default ground-truth / prediction panels."""

from __future__ import annotations

import numpy as np
import torch
from pycocotools import mask as mask_utils

from core.masks import PolygonMasks
from core.structures import DetSample, Instances
from core.visualization import Visualizer
from core.visualization.colors import class_color
from core.visualization.visualizer import MASK_ALPHA, PANEL_GAP_PX

TRIANGLE = np.array([[5.0, 50.0], [45.0, 45.0], [20.0, 8.0]], np.float32)


def random_image(seed: int = 0, height: int = 60, width: int = 80) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def blend(image: np.ndarray, color, alpha: float) -> np.ndarray:
    mixed = image.astype(np.float32) * (1 - alpha) + np.asarray(color, np.float32) * alpha
    return mixed.round().clip(0, 255).astype(np.uint8)


def segment_distance(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Distance of each ``(P, 2)`` point to the closed polygon's outline."""
    starts, ends = polygon, np.roll(polygon, -1, axis=0)
    edge = ends - starts
    rel = points[:, None, :] - starts[None]
    t = np.clip((rel * edge).sum(-1) / (edge * edge).sum(-1), 0, 1)
    nearest = starts[None] + t[..., None] * edge[None]
    return np.linalg.norm(points[:, None, :] - nearest, axis=-1).min(axis=1)


def test_binary_masks_change_exactly_their_pixels_by_the_alpha_blend():
    image = random_image()
    masks = np.zeros((2, 60, 80), bool)
    masks[0, 5:20, 10:30] = True
    masks[1, 30:55, 40:75] = True
    masks[1, 40, 5] = True  # a lone pixel counts too
    colors = [(255, 0, 0), (0, 200, 50)]
    out = Visualizer(image=image).draw_binary_masks(
        torch.from_numpy(masks), colors=colors, alphas=0.4).get_image()
    expected = image.copy()
    for mask, color in zip(masks, colors, strict=True):
        expected[mask] = blend(expected, color, 0.4)[mask]
    np.testing.assert_array_equal(out, expected)
    untouched = ~masks.any(0)
    np.testing.assert_array_equal(out[untouched], image[untouched])


def test_polygon_outlines_lie_on_the_polygon():
    width = 2.0
    out = Visualizer(image=np.zeros((60, 80, 3), np.uint8)).draw_polygons(
        TRIANGLE, edge_colors=(255, 255, 255), line_widths=width, alpha=1.0).get_image()
    lit = np.argwhere(out.max(axis=2) > 0)[:, ::-1] + 0.5  # pixel centres, xy
    strong = np.argwhere(out.max(axis=2) >= 128)[:, ::-1] + 0.5
    assert len(strong) > 100
    # every pixel the line covers for the most part touches the outline (half the line
    # width plus the pixel diagonal), apart from the mitred tips of the corners; antialiased
    # fringes stay within one more pixel
    to_vertex = np.linalg.norm(strong[:, None] - TRIANGLE[None], axis=-1).min(axis=1)
    off_corner = strong[to_vertex > 3 * width]
    assert segment_distance(off_corner, TRIANGLE).max() <= width / 2 + np.sqrt(0.5) + 1e-6
    assert segment_distance(lit, TRIANGLE).max() <= 2 * width
    # and the outline is drawn all round: points along each edge are lit
    for start, end in zip(TRIANGLE, np.roll(TRIANGLE, -1, axis=0), strict=True):
        for t in np.linspace(0.1, 0.9, 9):
            x, y = start + t * (end - start)
            assert out[int(y), int(x)].max() > 0, (x, y)
    inside = out[34, 23]  # the interior is not filled without face colours
    assert inside.max() == 0


def test_predicted_bitmaps_are_drawn_in_the_class_colour_under_the_box():
    image = random_image(1)
    mask = np.zeros((60, 80), bool)
    mask[20:40, 20:50] = True
    preds = Instances(torch.tensor([[18.0, 18.0, 52.0, 42.0]]), torch.tensor([2]),
                      torch.tensor([0.9]), torch.from_numpy(mask[None]))
    out = Visualizer().draw_instances(image, preds, ("a", "b", "c"))
    tinted = blend(image, class_color(2), MASK_ALPHA)
    np.testing.assert_array_equal(out[25:35, 25:45], tinted[25:35, 25:45])  # inside, off text
    np.testing.assert_array_equal(out[50:, :], image[50:, :])  # far from mask, box and label
    low = Instances(preds.boxes, preds.labels, torch.tensor([0.1]), preds.masks)
    np.testing.assert_array_equal(Visualizer().draw_instances(image, low, ("a", "b", "c"),
                                                              score_thr=0.3), image)


def test_ground_truth_polygons_are_drawn_in_the_original_frame():
    """The gt panel maps the sample's polygons (resized by 0.5 and flipped) back and fills
    them; the prediction panel blends the predicted bitmap."""
    height, width = 60, 80
    original = PolygonMasks([[TRIANGLE]], (height, width))
    stored = original.rescale(0.5, 0.5, (30, 40)).flip("horizontal")
    box = original.bounding_boxes()
    stored_box = torch.tensor([[40 - box[0, 2] / 2, box[0, 1] / 2, 40 - box[0, 0] / 2,
                                box[0, 3] / 2]])
    bitmap = torch.from_numpy(mask_utils.decode(original.to_rle()[0]).astype(bool))
    sample = DetSample(img_id=1, ori_shape=(height, width), img_shape=(30, 40),
                       scale_factor=(0.5, 0.5), flip=True, flip_direction="horizontal",
                       gt=Instances(stored_box, torch.tensor([0]), masks=stored),
                       pred=Instances(box, torch.tensor([0]), torch.tensor([0.8]),
                                      bitmap[None]))
    image = np.zeros((height, width, 3), np.uint8)
    drawn = Visualizer().add_datasample("x", image, sample, ("tri",))
    gt_panel, pred_panel = drawn[:, :width], drawn[:, width + PANEL_GAP_PX:]
    tinted = blend(image, class_color(0), MASK_ALPHA)[0, 0]
    centroid = (int(TRIANGLE[:, 1].mean()), int(TRIANGLE[:, 0].mean()))
    assert np.abs(gt_panel[centroid].astype(int) - tinted).max() <= 2  # filled where it was
    np.testing.assert_array_equal(pred_panel[centroid], tinted)
    mirrored = (centroid[0], width - 1 - centroid[1])
    assert gt_panel[mirrored].max() == 0  # not left flipped
    lit = np.argwhere(gt_panel.max(axis=2) > 0)[:, ::-1] + 0.5
    outside_box = ((lit[:, 0] < box[0, 0].item() - 2) | (lit[:, 0] > box[0, 2].item() + 2)
                   | (lit[:, 1] > box[0, 3].item() + 2))
    assert not outside_box.any()  # only the label text may stick out above the box
