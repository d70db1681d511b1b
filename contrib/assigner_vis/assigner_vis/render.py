"""Draw one image's ground truth and positive priors, with a legend band underneath."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
from PIL import Image

from assigner_vis.roi_samples import RoISamples
from core.api import (
    DetSample,
    ImagePositives,
    Instances,
    LevelPositives,
    Visualizer,
)

#: One colour per feature level (cycled), distinct from the class palette's first entries.
LEVEL_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 60, 60), (60, 220, 60), (60, 140, 255), (255, 200, 0), (220, 60, 255),
    (0, 230, 230),
)
LEGEND_LINE_PX = 18
LEGEND_FONT_PX = 13
#: Average glyph width of the legend font as a fraction of its size (for wrapping).
CHAR_WIDTH_EM = 0.6
CENTER_DOT_PX = 6
DOT_GROWTH_PX = 5


def level_color(level: int) -> tuple[int, int, int]:
    return LEVEL_COLORS[level % len(LEVEL_COLORS)]


def dot_size(level: int) -> int:
    """Diameter in pixels of the centre dot of a positive prior on ``level``."""
    return CENTER_DOT_PX + DOT_GROWTH_PX * level


def prior_label(lv: LevelPositives, width: int, height: int) -> str:
    """``WxH`` of a box prior, ``point`` for a point prior."""
    return "point" if lv.point_priors else f"{width}x{height}"


def legend_lines(positives: ImagePositives, show_prior: bool = False) -> list[str]:
    """``level l (stride s): n positive | #a WxH (k), ...`` per level with positives
    (``#a point (k)`` for point priors; with ``show_prior`` and point priors, a note on the
    squares drawn for them)."""
    header = f"{len(positives.sample.gt)} gt boxes; prior sizes in network-input pixels"
    if show_prior and any(lv.point_priors for lv in positives.levels):
        header += "; dashed squares: the stride-sized cell of each positive point prior"
    lines = [header]
    for lv in positives.levels:
        if len(lv.prior_inds) == 0:
            continue
        sizes = (lv.boxes[:, 2:] - lv.boxes[:, :2]).round().int().tolist()
        per_index: dict[int, tuple[str, int]] = {}
        for base, (w, h) in zip(lv.base_inds.tolist(), sizes, strict=True):
            label, count = per_index.get(base, (prior_label(lv, w, h), 0))
            per_index[base] = (label, count + 1)
        parts = [f"#{base} {label} ({count})"
                 for base, (label, count) in sorted(per_index.items())]
        stride = lv.stride[0] if lv.stride[0] == lv.stride[1] else lv.stride
        lines.append(f"level {lv.level} (stride {stride:g}): {len(lv.prior_inds)} positive | "
                     + ", ".join(parts))
    if len(lines) == 1:
        lines.append("no positive priors")
    return lines


def _wrap(lines: list[str], colors: list[tuple[int, int, int]], width_px: int,
          ) -> tuple[list[str], list[tuple[int, int, int]]]:
    """Wrap legend lines to the image width, each piece keeping its line's colour."""
    chars = max(20, int(width_px / (LEGEND_FONT_PX * CHAR_WIDTH_EM)))
    out_lines, out_colors = [], []
    for line, color in zip(lines, colors, strict=True):
        pieces = textwrap.wrap(line, chars, subsequent_indent="    ") or [""]
        out_lines += pieces
        out_colors += [color] * len(pieces)
    return out_lines, out_colors


def _enlarged_with_gt(visualizer: Visualizer, image: np.ndarray, sample: DetSample,
                      classes: Sequence[str], min_width: int) -> float:
    """Put ``image`` enlarged to at least ``min_width`` pixels wide, with the sample's ground
    truth (class colours), on the visualizer; returns the scale from original pixels."""
    scale = max(1.0, min_width / image.shape[1])
    if scale > 1:
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    gt = sample.instances_to_original(sample.gt.to("cpu"))
    visualizer.set_image(visualizer.draw_instances(image, Instances(gt.boxes * scale,
                                                                    gt.labels), classes))
    return scale


def _with_legend(visualizer: Visualizer, body: np.ndarray, lines: list[str],
                 colors: list[tuple[int, int, int]]) -> np.ndarray:
    """``body`` with a band of legend ``lines`` (wrapped to its width) below."""
    lines, colors = _wrap(lines, colors, body.shape[1])
    band = np.zeros((LEGEND_LINE_PX * len(lines) + 6, body.shape[1], 3), np.uint8)
    visualizer.set_image(band).draw_texts(
        lines,
        [[4, 3 + LEGEND_LINE_PX * i] for i in range(len(lines))],
        font_sizes=LEGEND_FONT_PX,
        colors=colors,
    )
    return np.concatenate([body, visualizer.get_image()], axis=0)


def render_positives(
    visualizer: Visualizer,
    image: np.ndarray,
    positives: ImagePositives,
    classes: Sequence[str],
    show_prior: bool = False,
    min_width: int = 512,
) -> np.ndarray:
    """Draw ground truth (class colours), a dot at the centre of every positive prior or at
    every positive point prior (level colour, larger for coarser levels), the priors
    themselves with ``show_prior`` (dashed; a point prior as the stride-sized square of its
    cell), and a legend band below.

    :param image: the original image ``(H, W, 3)`` uint8 RGB.
    :param min_width: smaller images are enlarged to this width so the drawing stays legible.
    :returns: ``(s * H + legend, s * W, 3)`` uint8 RGB with ``s = max(1, min_width / W)``.
    """
    scale = _enlarged_with_gt(visualizer, image, positives.sample, classes, min_width)
    drawn_levels = [lv for lv in positives.levels if len(lv.prior_inds)]
    if show_prior:
        for lv in drawn_levels:
            visualizer.draw_bboxes(lv.boxes_original * scale, edge_colors=level_color(lv.level),
                                   line_styles="--", line_widths=1, alpha=0.9)
    # coarse levels first with bigger dots: levels sharing a centre show as concentric rings
    for lv in sorted(drawn_levels, key=lambda lv: -lv.level):
        visualizer.draw_points(lv.points_original * scale, colors=level_color(lv.level),
                               sizes=dot_size(lv.level))
    body = visualizer.get_image()
    lines = legend_lines(positives, show_prior)
    level_ids = [lv.level for lv in positives.levels if len(lv.prior_inds)]
    colors = [(255, 255, 255)] + ([level_color(i) for i in level_ids] or [(255, 255, 255)])
    return _with_legend(visualizer, body, lines, colors)


#: Width in pixels of one panel of :func:`render_anchor_panels`.
PANEL_WIDTH_PX = 320
TITLE_BAND_PX = LEGEND_LINE_PX + 4


def anchor_panel_title(lv: LevelPositives, index: int) -> str:
    """``L<level> s<stride> #<index> WxH: n pos / g gt`` of one prior index of a level
    (``point`` instead of ``WxH`` for point priors)."""
    width, height = lv.anchor_sizes[index].round().int().tolist()
    chosen = lv.of_anchor(index)
    stride = lv.stride[0] if lv.stride[0] == lv.stride[1] else max(lv.stride)
    return (f"L{lv.level} s{stride:g} #{index} {prior_label(lv, width, height)}: "
            f"{int(chosen.sum())} pos / "
            f"{len(set(lv.gt_inds[chosen].tolist()))} gt")


def render_anchor_panels(
    visualizer: Visualizer,
    image: np.ndarray,
    positives: ImagePositives,
    classes: Sequence[str],
    panel_width: int = PANEL_WIDTH_PX,
) -> np.ndarray:
    """The positives split per level (rows) and per prior index in the cell (columns), to see
    which prior shapes a box matches where (YOLOv5's shape matching, anchor ratios): each
    panel shows the ground truth, that prior index's positives (dot and dashed prior box in
    the level colour; a dot alone for point priors) and a title line (prior size,
    positives, matched gt boxes). Point-prior heads (one point per cell) give one column.
    Levels with fewer priors per cell leave their last columns black.

    :param image: the original image ``(H, W, 3)`` uint8 RGB.
    :returns: ``(L * (TITLE_BAND_PX + h), A_max * panel_width, 3)`` uint8 RGB, with
        ``h = round(H * panel_width / W)``.
    """
    scale = panel_width / image.shape[1]
    size = (panel_width, round(image.shape[0] * scale))
    resized = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    gt = positives.sample.instances_to_original(positives.sample.gt.to("cpu"))
    with_gt = visualizer.draw_instances(resized, Instances(gt.boxes * scale, gt.labels), classes)
    columns = max(len(lv.anchor_sizes) for lv in positives.levels)
    rows = []
    for lv in positives.levels:
        panels = []
        for index in range(len(lv.anchor_sizes)):
            visualizer.set_image(with_gt.copy())
            chosen = lv.of_anchor(index)
            if bool(chosen.any()):
                color = level_color(lv.level)
                if not lv.point_priors:
                    visualizer.draw_bboxes(lv.boxes_original[chosen] * scale, edge_colors=color,
                                           line_styles="--", line_widths=1, alpha=0.9)
                visualizer.draw_points(lv.points_original[chosen] * scale, colors=color,
                                       sizes=dot_size(lv.level))
            body = visualizer.get_image()
            band = np.zeros((TITLE_BAND_PX, body.shape[1], 3), np.uint8)
            title = visualizer.set_image(band).draw_texts(
                [anchor_panel_title(lv, index)], [[4, 3]], font_sizes=LEGEND_FONT_PX,
                colors=[level_color(lv.level)]).get_image()
            panels.append(np.concatenate([title, body], axis=0))
        row = np.concatenate(panels, axis=1)
        missing = columns * panel_width - row.shape[1]
        rows.append(np.pad(row, ((0, 0), (0, missing), (0, 0))))
    return np.concatenate(rows, axis=0)


#: Colours of sampled RoIs: positives, negatives.
POSITIVE_ROI_COLOR = (60, 220, 60)
NEGATIVE_ROI_COLOR = (150, 150, 150)


def render_roi_samples(
    visualizer: Visualizer,
    image: np.ndarray,
    rois: RoISamples,
    classes: Sequence[str],
    min_width: int = 512,
) -> np.ndarray:
    """Draw ground truth (class colours), the sampled negative RoIs (grey, thin) and positive
    RoIs (green, dashed), and a legend band below.

    :param image: the original image ``(H, W, 3)`` uint8 RGB.
    :returns: ``(s * H + legend, s * W, 3)`` uint8 RGB with ``s = max(1, min_width / W)``.
    """
    scale = _enlarged_with_gt(visualizer, image, rois.sample, classes, min_width)
    if len(rois.neg_boxes_original):
        visualizer.draw_bboxes(rois.neg_boxes_original * scale, edge_colors=NEGATIVE_ROI_COLOR,
                               line_widths=1, alpha=0.5)
    if len(rois.pos_boxes_original):
        visualizer.draw_bboxes(rois.pos_boxes_original * scale, edge_colors=POSITIVE_ROI_COLOR,
                               line_styles="--", line_widths=1, alpha=0.9)
    body = visualizer.get_image()
    lines = [f"{len(rois.sample.gt)} gt boxes; RoI stage samples "
             f"(gt boxes added as proposals included):",
             f"{len(rois.pos_boxes)} positive RoIs (green)",
             f"{len(rois.neg_boxes)} negative RoIs (grey)"]
    colors = [(255, 255, 255), POSITIVE_ROI_COLOR, NEGATIVE_ROI_COLOR]
    return _with_legend(visualizer, body, lines, colors)
