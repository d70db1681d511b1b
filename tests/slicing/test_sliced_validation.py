"""The ``[slice]`` table: validation and testing score the merged detections of the tiles;
a tile covering the whole image gives today's predictions and mAP exactly."""

from __future__ import annotations

import json

import pytest

from core.engine.full_config import load_full_config
from core.engine.launch import run_testing
from core.engine.run_config import RunSettings
from core.errors import ConfigError

from .conftest import DEMO, TINY


def _test(checkpoint, tmp_path, name, *extra):
    cfg = load_full_config(str(DEMO), [*TINY, *extra], allow_new=True)
    out = tmp_path / f"{name}.json"
    metrics = run_testing(cfg, config_path=str(DEMO), checkpoint=str(checkpoint),
                          work_dir=str(tmp_path / name), out=str(out))
    return metrics, json.loads(out.read_text())["predictions"]


def test_a_tile_covering_the_image_scores_as_the_unsliced_path(tiny_checkpoint, tmp_path):
    plain_metrics, plain = _test(tiny_checkpoint, tmp_path, "plain")
    one_metrics, one = _test(tiny_checkpoint, tmp_path, "one", "slice={size = 160}")
    assert sum(len(p["boxes"]) for p in plain) > 0
    assert one == plain
    assert one_metrics == plain_metrics


def test_smaller_tiles_are_merged_into_image_coordinates(tiny_checkpoint, tmp_path):
    metrics, sliced = _test(tiny_checkpoint, tmp_path, "tiles",
                            "slice={size = 96, overlap = 0.25, full_image = true}")
    _, plain = _test(tiny_checkpoint, tmp_path, "plain")
    assert "coco/bbox_mAP" in metrics
    assert sum(len(p["boxes"]) for p in sliced) > 0
    for record in sliced:
        for x1, y1, x2, y2 in record["boxes"]:
            assert 0 <= x1 <= x2 <= 160 and 0 <= y1 <= y2 <= 160
    assert sliced != plain


def test_the_slice_table_is_checked_with_the_run_settings():
    settings = RunSettings.from_config({"slice": {"size": [128, 96], "merge": "nms"}},
                                       training=False)
    assert settings.slice is not None and settings.slice.size == (128, 96)
    assert RunSettings.from_config({}, training=False).slice is None
    with pytest.raises(ConfigError, match="slice: unknown keys"):
        RunSettings.from_config({"slice": {"size": 64, "stride": 32}}, training=False)
