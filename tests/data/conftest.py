"""Hand-made samples whose objects are painted with one colour code each, so that box
geometry can be checked against the pixels after any transform.

Object ``label`` is painted 255 in the channels of the bits of ``label + 1`` (label 0: red,
1: green, 2: red+green, 3: blue, ...) on a black image. Blends at edges (resize) never match
a code, so the bounds of the matching pixels are the visible object.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from core.structures import DetSample, Instances

FULL = 255


def channels_of(label: int) -> list[int]:
    code = label + 1
    return [c for c in range(3) if code >> c & 1]


def make_painted(
    shape: tuple[int, int],
    boxes: list[tuple[int, int, int, int]],
    labels: list[int],
    img_id: int = 1,
) -> DetSample:
    """A uint8 sample, black except for each box painted with its label's colour code."""
    image = torch.zeros((3, *shape), dtype=torch.uint8)
    for (x1, y1, x2, y2), label in zip(boxes, labels, strict=True):
        image[:, y1:y2, x1:x2] = 0
        for channel in channels_of(label):
            image[channel, y1:y2, x1:x2] = FULL
    return DetSample(
        img_id=img_id,
        img_path=f"painted-{img_id}",
        ori_shape=shape,
        img_shape=shape,
        pad_shape=shape,
        image=image,
        gt=Instances(
            boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            labels=torch.tensor(labels, dtype=torch.int64),
        ),
    )


def painted_box(
    image: torch.Tensor, label: int, scale: float = 1.0, others_zero: bool = True, tol: float = 3.0
):
    """Bounds ``[x1, y1, x2, y2]`` of the pixels showing ``label``'s code (``scale`` times
    full intensity); ``others_zero`` also requires the other channels to be black."""
    mask = torch.ones(image.shape[1:], dtype=torch.bool)
    for channel in range(3):
        if channel in channels_of(label):
            mask &= (image[channel].float() - FULL * scale).abs() <= tol
        elif others_zero:
            mask &= image[channel].float() <= tol
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if len(xs) == 0:
        return None
    return [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


def assert_boxes_match_pixels(
    sample: DetSample, scale: float = 1.0, others_zero: bool = True, tol_px: float = 0.0
) -> None:
    """Every gt box bounds the pixels of its label's code (up to ``tol_px``)."""
    assert len(sample.gt.boxes) == len(sample.gt.labels)
    for box, label in zip(sample.gt.boxes.tolist(), sample.gt.labels.tolist(), strict=True):
        found = painted_box(sample.image, label, scale, others_zero)
        assert found is not None, f"label {label}: box {box} but no painted pixels"
        assert np.allclose(found, box, atol=tol_px), f"label {label}: box {box} vs pixels {found}"


@pytest.fixture
def paint() -> SimpleNamespace:
    """The helpers above: ``make``, ``box``, ``check``."""
    return SimpleNamespace(make=make_painted, box=painted_box, check=assert_boxes_match_pixels)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
