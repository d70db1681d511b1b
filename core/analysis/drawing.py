"""Images drawn with the TIDE verdict: true positives, false positives labelled with their
error type, and missed boxes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from core.analysis.tide import IGNORED, TRUE_POSITIVE, ImageErrors
from core.evaluation.records import ImageResult

#: Outline colour of each kind of box (RGB).
COLORS = {TRUE_POSITIVE: (40, 170, 60), "miss": (255, 160, 0), "matched": (150, 150, 150),
          IGNORED: (120, 120, 255)}
ERROR_COLOR = (220, 30, 30)
MIN_SIDE = 320  # small images are enlarged to this side for legible labels


def _label(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str,
           color: tuple[int, int, int]) -> None:
    x, y = xy
    left, top, right, bottom = draw.textbbox((x, y), text)
    y = max(0.0, y - (bottom - top) - 2)
    draw.rectangle((x, y, x + right - left + 2, y + bottom - top + 2), fill=color)
    draw.text((x + 1, y), text, fill=(255, 255, 255))


def draw_verdict(image: np.ndarray, result: ImageResult, verdict: ImageErrors,
                 classes: Sequence[str], score_thr: float, path: Path) -> Path:
    """Save ``image`` (``(H, W, 3)`` uint8 RGB, original pixels) with its boxes as a PNG.

    Ground truth: grey when matched, a thick orange outline labelled "miss" when missed.
    Detections with ``score >= score_thr``: green true positives, red false positives with
    their error type, blue ignored ones (crowd regions).
    """
    scale = max(1.0, MIN_SIDE / max(1, min(image.shape[:2])))
    canvas = Image.fromarray(image).convert("RGB")
    if scale > 1.0:
        canvas = canvas.resize((round(canvas.width * scale), round(canvas.height * scale)),
                               Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(canvas)
    for box, label, matched, missed in zip(result.gt_boxes, result.gt_labels,
                                           verdict.gt_matched, verdict.gt_missed, strict=True):
        color = COLORS["matched"] if matched else COLORS["miss"]
        xyxy = [float(v) * scale for v in box]
        draw.rectangle(xyxy, outline=color, width=1 if matched else 3)
        if not matched:
            _label(draw, (xyxy[0], xyxy[3] + 12), f"{'miss' if missed else 'unmatched'} "
                   f"{classes[int(label)]}", color)
    for index, kind in zip(verdict.pred_index, verdict.pred_kind, strict=True):
        score = float(result.pred_scores[index])
        if score < score_thr:
            continue
        color = COLORS.get(kind, ERROR_COLOR)
        xyxy = [float(v) * scale for v in result.pred_boxes[index]]
        draw.rectangle(xyxy, outline=color, width=2)
        name = classes[int(result.pred_labels[index])]
        tag = "" if kind == TRUE_POSITIVE else f"{kind}: "
        _label(draw, (xyxy[0], xyxy[1]), f"{tag}{name} {score:.2f}", color)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
