"""``plugdet predict --slice``: tiles predicted in batches, merged detections written to
predictions.json; one tile covering the image gives the unsliced result."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from core.tools.predict import main

from .conftest import DEMO, TINY


def _overrides() -> list[str]:
    return [item for key in TINY for item in ("--set", key)]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, size=(300, 420, 3), dtype=np.uint8)
    pixels[40:90, 60:130] = (230, 20, 20)
    pixels[150:230, 250:330] = (20, 200, 30)
    Image.fromarray(pixels).save(folder / "large.png")
    return folder


def _predict(checkpoint, images, out, *extra) -> dict:
    status = main([str(DEMO), str(checkpoint), str(images), "--out", str(out), "--score-thr",
                   "0.0", *extra, *_overrides()])
    assert status == 0
    return json.loads((out / "predictions.json").read_text())


def test_sliced_predict_writes_merged_detections_inside_the_image(tiny_checkpoint, images,
                                                                  tmp_path, capsys):
    payload = _predict(tiny_checkpoint, images, tmp_path / "sliced", "--slice", "128",
                       "--overlap", "0.25", "--batch-size", "3", "--full-image")
    assert "1 images" in capsys.readouterr().out
    assert payload["slice"]["size"] == [128, 128] and payload["slice"]["full_image"] is True
    assert payload["slice"]["merge"] == "greedy_nmm"
    (image,) = payload["images"]
    assert image["width"] == 420 and image["height"] == 300
    boxes = np.array([d["box"] for d in image["detections"]])
    assert len(boxes) > 0
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 420).all()
    assert (boxes[:, 1] >= 0).all() and (boxes[:, 3] <= 300).all()
    assert (tmp_path / "sliced" / "large.png").is_file()


def test_one_tile_covering_the_image_gives_the_unsliced_detections(tiny_checkpoint, images,
                                                                   tmp_path):
    plain = _predict(tiny_checkpoint, images, tmp_path / "plain")
    sliced = _predict(tiny_checkpoint, images, tmp_path / "one", "--slice", "512")
    assert sliced["images"][0]["detections"] == plain["images"][0]["detections"]
    assert "slice" not in plain


def test_nms_and_greedy_nmm_differ_only_in_how_they_merge(tiny_checkpoint, images, tmp_path):
    greedy = _predict(tiny_checkpoint, images, tmp_path / "g", "--slice", "128")
    nms = _predict(tiny_checkpoint, images, tmp_path / "n", "--slice", "128", "--merge", "nms")
    assert nms["slice"]["merge"] == "nms"
    greedy_scores = sorted(d["score"] for d in greedy["images"][0]["detections"])
    nms_scores = sorted(d["score"] for d in nms["images"][0]["detections"])
    assert len(greedy_scores) == len(nms_scores) and greedy_scores == pytest.approx(nms_scores)


def test_slice_with_tta_is_refused(tiny_checkpoint, images, tmp_path, capsys):
    status = main([str(DEMO), str(tiny_checkpoint), str(images), "--out", str(tmp_path / "x"),
                   "--slice", "128", "--tta", *_overrides()])
    assert status == 2 and "--slice and --tta" in capsys.readouterr().err
