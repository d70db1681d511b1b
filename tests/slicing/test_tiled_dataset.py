"""TiledDataset: tiles around objects and at random in the set ratio, cut boxes kept by the
share of their area in the tile (SAHI's ``min_area_ratio``), Mosaic drawing tiles too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.data.datasets.tiled import TILE_KEY, TILE_KIND_KEY, TiledDataset
from core.data.transforms.mix import Mosaic
from core.errors import DataError
from core.plugins import get_registries
from core.structures import DetSample, Instances

HEIGHT, WIDTH = 600, 900


class LoadedImages:
    """Images already loaded (what a dataset with ``pipeline = [LoadImage]`` returns)."""

    classes = ("a", "b")

    def __init__(self, boxes_per_image: list[list[list[float]]]) -> None:
        self.boxes = boxes_per_image
        rows = torch.arange(HEIGHT).view(HEIGHT, 1).expand(HEIGHT, WIDTH)
        columns = torch.arange(WIDTH).view(1, WIDTH).expand(HEIGHT, WIDTH)
        self.image = torch.stack([rows % 256, columns % 256,
                                  (rows // 256) * 16 + columns // 256]).to(torch.uint8)

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else key
        boxes = torch.tensor(self.boxes[index], dtype=torch.float32).reshape(-1, 4)
        return DetSample(img_id=index, ori_shape=(HEIGHT, WIDTH), img_shape=(HEIGHT, WIDTH),
                         pad_shape=(HEIGHT, WIDTH), image=self.image,
                         gt=Instances(boxes, torch.arange(len(boxes)) % 2))


BOXES = [[[100.0 + 60 * i, 80.0 + 45 * i, 130.0 + 60 * i, 110.0 + 45 * i] for i in range(10)]]


def _share_inside(box, window):
    x1, y1, x2, y2 = window
    width = max(0.0, min(box[2], x2) - max(box[0], x1))
    height = max(0.0, min(box[3], y2) - max(box[1], y1))
    return width * height / ((box[2] - box[0]) * (box[3] - box[1]))


@pytest.mark.parametrize("threshold", [0.1, 0.6])
def test_cut_boxes_are_kept_from_the_threshold_share_of_their_area(threshold):
    dataset = TiledDataset(LoadedImages(BOXES), size=128, object_ratio=0.5,
                           min_area_ratio=threshold)
    cut_seen = 0
    for seed in range(120):
        tile = dataset[(0, seed)]
        x1, y1, x2, y2 = tile.meta[TILE_KEY]
        expected = [b for b in BOXES[0] if _share_inside(b, (x1, y1, x2, y2)) >= threshold
                    and _share_inside(b, (x1, y1, x2, y2)) > 0]
        cut_seen += any(0 < _share_inside(b, (x1, y1, x2, y2)) < 1 for b in BOXES[0])
        clipped = [[max(b[0], x1) - x1, max(b[1], y1) - y1, min(b[2], x2) - x1,
                    min(b[3], y2) - y1] for b in expected]
        assert tile.gt.boxes.tolist() == clipped
        assert tile.image.shape == (3, 128, 128)
        corner = tile.image[:, 0, 0].tolist()  # the tile's own pixels
        assert corner == [y1 % 256, x1 % 256, (y1 // 256) * 16 + x1 // 256]
    assert cut_seen > 10


def test_object_tiles_hold_an_object_and_come_in_the_set_ratio():
    dataset = TiledDataset(LoadedImages(BOXES), size=(128, 160), object_ratio=0.7)
    kinds = []
    for seed in range(400):
        tile = dataset[(0, seed)]
        kinds.append(tile.meta[TILE_KIND_KEY])
        if kinds[-1] == "object":
            assert any(_share_inside(b, tile.meta[TILE_KEY]) == 1.0 for b in BOXES[0])
    assert kinds.count("object") / len(kinds) == pytest.approx(0.7, abs=0.06)
    assert all(kind == "random" for kind in (
        TiledDataset(LoadedImages([[]]), size=128, object_ratio=1.0)[(0, s)].meta[TILE_KIND_KEY]
        for s in range(20)))


def test_a_small_image_gives_one_tile_of_its_size_and_length_counts_tiles_per_image():
    dataset = TiledDataset(LoadedImages(BOXES * 3), size=1024, tiles_per_image=4)
    assert len(dataset) == 12
    tile = dataset[(5, 0)]
    assert tile.meta[TILE_KEY] == (0, 0, WIDTH, HEIGHT) and len(tile.gt) == 10
    assert dataset.classes == ("a", "b")


def test_mosaic_draws_its_other_samples_as_tiles():
    dataset = TiledDataset(LoadedImages(BOXES * 2), size=128, object_ratio=1.0,
                           pipeline=[Mosaic(img_scale=(128, 128))])
    sample = dataset[(0, 3)]
    assert tuple(sample.image.shape[1:]) == (256, 256)
    assert len(sample.gt) >= 1


def test_a_resized_wrapped_sample_is_refused():
    class Resized(LoadedImages):
        def __getitem__(self, key):
            sample = super().__getitem__(key)
            sample.img_shape = (300, 450)
            return sample

    with pytest.raises(DataError, match="must only load images"):
        TiledDataset(Resized(BOXES), size=128)[(0, 0)]


def test_registered_and_built_from_a_config_table(tmp_path, monkeypatch):
    monkeypatch.setenv("PLUGDET_CACHE", str(tmp_path))
    dataset = get_registries().build("dataset", {
        "type": "TiledDataset", "size": 256, "object_ratio": 0.5, "tiles_per_image": 2,
        "dataset": {"type": "SmallObjectsDataset", "num_images": 1, "split": "val",
                    "image_size": [512, 640], "objects": [20, 40],
                    "pipeline": [{"type": "LoadImage"}]},
        "pipeline": [{"type": "RandomFlip"}]}, path="dataset")
    assert len(dataset) == 2 and dataset.classes[0] == "circle"
    tile = dataset[(1, 7)]
    assert tuple(tile.image.shape) == (3, 256, 256) and len(tile.gt) > 0
    assert np.all(tile.gt.boxes.numpy() >= 0) and np.all(tile.gt.boxes.numpy() <= 256)
