"""Drawing a batch's positive priors: one row per image, one column per pyramid level.

Every panel shows the network-input image with the ground-truth boxes, each in its own colour,
and a dot at every positive prior of that level in the colour of the box it is matched to
(with ``show_prior``, anchor priors are drawn as dashed boxes too). One canvas render per grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from core.visualization.canvas import Canvas
from core.visualization.colors import class_color
from core.visualization.positives import ImagePositives

#: White pixels between two panels.
PANEL_GAP_PX = 4
TITLE_BOX = {"facecolor": "black", "alpha": 0.7, "pad": 1.0, "edgecolor": "none"}
TITLE_FONT_PX = 11
POSITIVE_DOT_PX = 5
GT_LINE_PX = 2


def draw_positive_grid(canvas: Canvas, images: Sequence[np.ndarray],
                       positives: Sequence[ImagePositives], min_panel: int = 256,
                       show_prior: bool = False) -> np.ndarray:
    """Draw the grid and return it.

    :param canvas: any canvas (the run's Visualizer); its current drawing is replaced.
    :param images: per image ``(H, W, 3)`` uint8 RGB network input (all the same size).
    :param positives: per image its positives (network-input pixels, the same levels).
    :param min_panel: panels are enlarged so that their long side is at least this.
    :param show_prior: also draw anchor priors (dashed) where the priors are boxes.
    :returns: ``(R * (s H + gap) - gap, L * (s W + gap) - gap, 3)`` uint8 RGB, ``R`` images,
        ``L`` levels, ``s = max(1, min_panel / max(H, W))``.
    """
    height, width = images[0].shape[:2]
    scale = max(1.0, min_panel / max(height, width))
    panel_h, panel_w = round(height * scale), round(width * scale)
    rows, cols = len(images), len(positives[0].levels)
    grid = np.full((rows * (panel_h + PANEL_GAP_PX) - PANEL_GAP_PX,
                    cols * (panel_w + PANEL_GAP_PX) - PANEL_GAP_PX, 3), 255, np.uint8)
    for row, image in enumerate(images):
        big = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
        big = torch.nn.functional.interpolate(big, size=(panel_h, panel_w), mode="bilinear",
                                              align_corners=False)
        big = big[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
        for col in range(cols):
            top, left = row * (panel_h + PANEL_GAP_PX), col * (panel_w + PANEL_GAP_PX)
            grid[top:top + panel_h, left:left + panel_w] = big
    canvas.set_image(grid)
    boxes, box_colors, dots, dot_colors, priors, prior_colors = [], [], [], [], [], []
    titles, title_xy = [], []
    for row, image_pos in enumerate(positives):
        image_gt = image_pos.sample.gt.boxes
        colors = [class_color(index) for index in range(len(image_gt))]
        for col, level in enumerate(image_pos.levels):
            offset = torch.tensor([col * (panel_w + PANEL_GAP_PX), row * (panel_h + PANEL_GAP_PX)],
                                  dtype=torch.float32)
            boxes.append(image_gt.float().cpu() * scale + offset.repeat(2))
            box_colors += colors
            dots.append(level.points * scale + offset)
            dot_colors += [colors[index] for index in level.gt_inds.tolist()]
            if show_prior and not level.point_priors:
                priors.append(level.boxes * scale + offset.repeat(2))
                prior_colors += [colors[index] for index in level.gt_inds.tolist()]
            titles.append(f"level {col} (stride {level.stride[0]:g}): "
                          f"{len(level.points)} positive")
            title_xy.append((offset + 2).tolist())
    all_boxes = torch.cat(boxes)
    if len(all_boxes):
        canvas.draw_bboxes(all_boxes, edge_colors=box_colors, line_widths=GT_LINE_PX)
    if priors and len(torch.cat(priors)):
        canvas.draw_bboxes(torch.cat(priors), edge_colors=prior_colors, line_styles="--",
                           line_widths=1)
    all_dots = torch.cat(dots)
    if len(all_dots):
        canvas.draw_points(all_dots, colors=dot_colors, sizes=POSITIVE_DOT_PX)
    canvas.draw_texts(titles, title_xy, font_sizes=TITLE_FONT_PX, colors="white",
                      bboxes=TITLE_BOX)
    return canvas.get_image()
