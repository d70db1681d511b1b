"""Drawing primitives of the Visualizer: pixels land where and how they were asked for."""

import numpy as np
import pytest
import torch

from core.visualization import Visualizer

RED = np.array([255, 0, 0])
BLUE = np.array([0, 0, 255])


def black(height: int = 60, width: int = 80) -> np.ndarray:
    return np.zeros((height, width, 3), np.uint8)


def close_to(pixel: np.ndarray, color: np.ndarray, tol: int = 40) -> bool:
    return bool(np.abs(pixel.astype(int) - color).max() <= tol)


def test_set_image_round_trips_pixels_exactly():
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    vis = Visualizer()
    assert np.array_equal(vis.set_image(image).get_image(), image)


def test_chained_bboxes_stack_and_keep_size():
    vis = Visualizer()
    out = (
        vis.set_image(black())
        .draw_bboxes(torch.tensor([10.0, 10.0, 40.0, 40.0]), edge_colors="r", alpha=1.0)
        .draw_bboxes(np.array([[50, 5, 75, 55]]), edge_colors=(0, 0, 255), alpha=1.0)
        .get_image()
    )
    assert out.shape == (60, 80, 3) and out.dtype == np.uint8
    assert close_to(out[10, 25], RED)  # top edge of the first box
    assert close_to(out[30, 50], BLUE)  # left edge of the second box
    assert out[25, 25].max() == 0  # inside the first box nothing is filled


def test_set_image_discards_earlier_drawings():
    vis = Visualizer()
    vis.set_image(black()).draw_bboxes([10, 10, 40, 40], edge_colors="r")
    assert vis.set_image(black()).get_image().max() == 0


def test_per_item_colors_and_widths():
    boxes = [[5, 5, 30, 30], [40, 5, 70, 30]]
    out = (
        Visualizer(image=black())
        .draw_bboxes(boxes, edge_colors=["r", "b"], line_widths=[1, 5], alpha=1.0)
        .get_image()
    )
    assert close_to(out[5, 15], RED) and close_to(out[5, 55], BLUE)
    thick = (np.abs(out[:, 55].astype(int) - BLUE).max(axis=1) < 40).sum()
    thin = (np.abs(out[:, 15].astype(int) - RED).max(axis=1) < 40).sum()
    assert thick > thin


def test_dashed_lines_leave_gaps_solid_do_not():
    def top_edge(style: str) -> np.ndarray:
        out = (
            Visualizer(image=black(40, 200))
            .draw_lines([[10, 190]], [[20, 20]], colors="r", line_styles=style, line_widths=2)
            .get_image()
        )
        return out[20, 15:185, 0]

    assert (top_edge("-") > 128).all()
    dashed = top_edge("--") > 128
    assert dashed.any() and not dashed.all()


def test_texts_points_circles_polygons_draw_pixels():
    out = (
        Visualizer(image=black(100, 100))
        .draw_texts("hello", [5, 5], colors="w", font_sizes=14)
        .draw_points([[80, 80]], colors="r", sizes=8)
        .draw_circles([50, 50], 20, edge_colors="b", alpha=1.0)
        .draw_polygons([[10, 90], [30, 90], [20, 70]], edge_colors="g", face_colors="g", alpha=1.0)
        .get_image()
    )
    assert out[5:20, 5:40].max() > 200  # text
    assert close_to(out[80, 80], RED)
    assert close_to(out[50, 30], BLUE) and out[50, 50].max() == 0  # ring, empty centre
    assert out[85, 20, 1] > 100  # filled polygon


def test_binary_masks_blend_with_alpha_and_keep_earlier_drawings():
    image = np.full((20, 30, 3), 100, np.uint8)
    mask = np.zeros((20, 30), bool)
    mask[5:10, 5:10] = True
    vis = Visualizer(image=image).draw_bboxes([15, 2, 28, 18], edge_colors="r", alpha=1.0)
    out = vis.draw_binary_masks(torch.from_numpy(mask), colors=(0, 0, 200), alphas=0.5).get_image()
    assert out[7, 7].tolist() == [50, 50, 150]
    assert out[0, 0].tolist() == [100, 100, 100]
    assert close_to(out[2, 20], RED)


def test_tensor_image_in_chw_layout_is_accepted():
    chw = torch.zeros((3, 10, 12), dtype=torch.uint8)
    chw[0] = 255
    out = Visualizer().set_image(chw).get_image()
    assert out.shape == (10, 12, 3) and (out[..., 0] == 255).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda v: v.draw_bboxes([1, 2, 3]), r"bboxes: expected shape \(4,\)"),
        (lambda v: v.draw_bboxes([10, 10, 5, 20]), "x2 >= x1"),
        (lambda v: v.draw_bboxes([1, 1, 5, 5], edge_colors="notacolour"), "unknown colour"),
        (lambda v: v.draw_bboxes([[1, 1, 5, 5]] * 3, edge_colors=["r", "g"]), "list of 3"),
        (lambda v: v.draw_bboxes([1, 1, 5, 5], line_styles="~~"), "unknown line style"),
        (lambda v: v.draw_texts(["a", "b"], [1, 1]), "2 texts but 1 positions"),
        (lambda v: v.draw_binary_masks(np.ones((3, 3), bool)), "binary_masks"),
        (lambda v: v.draw_circles([[1, 1], [2, 2]], [1, 2, 3]), "radius"),
        (lambda v: v.draw_polygons([[0, 0], [1, 1]]), "at least 3 vertices"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call(Visualizer(image=black()))


def test_bad_images_and_missing_image():
    with pytest.raises(RuntimeError, match="set_image"):
        Visualizer().draw_bboxes([0, 0, 1, 1])
    with pytest.raises(ValueError, match="uint8"):
        Visualizer().set_image(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        Visualizer().set_image(torch.zeros((4, 4, 5), dtype=torch.uint8))


def test_bfloat16_boxes_are_drawn_like_float32_ones():
    boxes = torch.tensor([[4.0, 6.0, 40.0, 30.0]])
    drawn = []
    for dtype in (torch.float32, torch.bfloat16):
        vis = Visualizer().set_image(black())
        drawn.append(vis.draw_bboxes(boxes.to(dtype), edge_colors="r", alpha=1.0).get_image())
    assert drawn[0].any() and np.array_equal(drawn[0], drawn[1])
