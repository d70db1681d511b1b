"""The shapes set with instance masks: the polygons of the drawn shapes, same images and boxes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.config import load_config
from core.data.datasets import shapes_gen
from core.data.datasets.shapes import ShapesDataset
from core.masks import PolygonMasks

SIZE = 256
ROOT = Path(__file__).resolve().parents[2]


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    """``mask`` grown by ``pixels`` in every direction (a square neighbourhood)."""
    padded = np.pad(mask, pixels)
    h, w = mask.shape
    steps = range(-pixels, pixels + 1)
    return np.logical_or.reduce([padded[pixels + dy:pixels + dy + h, pixels + dx:pixels + dx + w]
                                 for dy in steps for dx in steps])


def colour_code(image: np.ndarray) -> np.ndarray:
    rgb = image.astype(np.int64)
    return rgb[..., 0] * 65536 + rgb[..., 1] * 256 + rgb[..., 2]


def darker(code: int) -> int:
    """The generator's outline and stripe colour of a fill colour (``int(c * 0.55)``)."""
    return sum(int((code >> shift & 255) * 0.55) << shift for shift in (16, 8, 0))


def drawn_on_black(monkeypatch, index: int):
    """Image ``index`` of the train split of seed 0 drawn on a black background (the same
    random stream: the background is still drawn, then dropped) and its objects."""
    original = shapes_gen._background

    def black(rng, size):
        original(rng, size)
        return np.zeros((size, size, 3), dtype=np.uint8)

    monkeypatch.setattr(shapes_gen, "_background", black)
    rng = np.random.default_rng([0, shapes_gen.SPLIT_IDS["train"], index])
    canvas, objects = shapes_gen.draw_image(rng, SIZE, (24, 96), 5)
    return np.asarray(canvas), objects


def test_each_mask_covers_the_pixels_of_its_colour(monkeypatch):
    """Per object, from the top one down: its visible mask (less the pixels drawn over it)
    against the pixels of its fill and outline/stripe colours."""
    ious, sizes = [], []
    for index in range(24):
        image, objects = drawn_on_black(monkeypatch, index)
        masks = PolygonMasks([[np.asarray(points, dtype=np.float32)] for _, _, points in objects],
                             (SIZE, SIZE)).to_tensor().numpy()
        code = colour_code(image)
        covered = np.zeros((SIZE, SIZE), dtype=bool)
        for i in reversed(range(len(objects))):
            visible = masks[i] & ~covered
            values, counts = np.unique(code[visible], return_counts=True)
            top = values[np.argsort(-counts)[:2]]
            # the most frequent colour is the fill, or its stripes when they cover more
            fill = int(top[1]) if len(top) == 2 and darker(int(top[1])) == top[0] else int(top[0])
            drawn = np.isin(code, [fill, darker(fill)]) & ~covered
            ious.append((drawn & visible).sum() / (drawn | visible).sum())
            box = objects[i][0]
            sizes.append(min(box[2] - box[0], box[3] - box[1]))
            # PIL also paints the boundary pixels (star tips: a pixel more)
            assert not (drawn & ~dilate(visible, 2)).any()
            assert not (visible & ~dilate(drawn, 1)).any()
            covered |= drawn
    ious, sizes = np.asarray(ious), np.asarray(sizes)
    assert len(ious) > 50
    assert (ious[sizes >= 32] > 0.9).all() and (ious > 0.85).all()
    assert ious.mean() > 0.95


def test_circle_polygon_is_the_inscribed_64_gon_on_the_box():
    points = np.asarray(shapes_gen._circle(50.0, 40.0, 20.0))
    assert len(points) == shapes_gen.CIRCLE_VERTICES == 64
    np.testing.assert_allclose(np.hypot(points[:, 0] - 50, points[:, 1] - 40), 20.0)
    np.testing.assert_allclose([*points.min(0), *points.max(0)], [30, 20, 70, 60], atol=1e-9)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    options = {"num_images": 6, "data_root": str(root), "split": "val"}
    return ShapesDataset(**options), ShapesDataset(with_mask=True, **options)


def test_mask_variant_has_the_same_images_and_boxes(both):
    plain, masked = both
    assert plain.folder != masked.folder and not plain.records.with_mask
    for index in range(len(plain)):
        a, b = plain.records[index], masked.records[index]
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert (plain.folder / "images" / a.img_path.split("/")[-1]).read_bytes() == \
            (masked.folder / "images" / b.img_path.split("/")[-1]).read_bytes()
    plain_json = json.loads((plain.folder / "annotations.json").read_text())
    assert not any("segmentation" in a for a in plain_json["annotations"])


def test_mask_variant_masks_fit_their_boxes_and_areas(both):
    _, masked = both
    content = json.loads((masked.folder / "annotations.json").read_text())
    for annotation in content["annotations"]:
        (vertices,) = annotation["segmentation"]
        points = np.reshape(vertices, (-1, 2))
        x, y, w, h = annotation["bbox"]
        np.testing.assert_allclose([*points.min(0), *points.max(0)], [x, y, x + w, y + h],
                                   atol=0.011)
        assert annotation["area"] < w * h
    for index in range(len(masked)):
        gt = masked.records[index].gt
        assert isinstance(gt.masks, PolygonMasks) and len(gt.masks) == len(gt.boxes) > 0
        assert gt.masks.shape == (SIZE, SIZE)
        np.testing.assert_allclose(gt.masks.bounding_boxes(), gt.boxes, atol=0.011)
        assert (gt.masks.areas() > 0.3 * (gt.boxes[:, 2:] - gt.boxes[:, :2]).prod(1)).all()


def test_masks_base_config_reads_masks_and_asks_for_segm():
    cfg = load_config(ROOT / "core/configs/_base_/datasets/shapes_masks.toml")
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        assert cfg[loader]["dataset"]["type"] == "ShapesDataset"
        assert cfg[loader]["dataset"]["with_mask"] is True
    for evaluator in ("val_evaluator", "test_evaluator"):
        assert cfg[evaluator] == {"type": "CocoMetric", "metric": ["bbox", "segm"]}
