"""predict on new images: drawn images and one JSON, bad files named and skipped; its boxes
equal those of ``--test --out`` on the same images."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import DataError
from core.tools.predict import collect_images

from .conftest import DEMO, TINY_RUN

SCORE_THR = "0.001"  # a 1-epoch model scores low; keep (almost) every detection


def _run(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False,
                          env=env, cwd=cwd)


@pytest.fixture(scope="module")
def predicted(tiny_demo, tmp_path_factory):
    """``--test --out`` of the tiny model, then predict on copies of the same 4 test images
    plus a corrupt, a grayscale and an RGBA image."""
    root = tmp_path_factory.mktemp("predict")
    head = ["--set", f"model.head.postprocess.score_thr={SCORE_THR}"]
    test = _run(["-m", "core.run", str(DEMO), *TINY_RUN, *head, "--test",
                 str(tiny_demo.checkpoint), "--out", str(root / "test.json"), "--work-dir",
                 str(root / "work")], tiny_demo.env, root)
    assert test.returncode == 0, test.stderr[-3000:]
    reference = json.loads((root / "test.json").read_text())["predictions"]
    images = root / "images"
    images.mkdir()
    for record in reference:
        shutil.copy(record["img_path"], images / Path(record["img_path"]).name)
    first = Image.open(reference[0]["img_path"])
    first.convert("L").save(images / "gray.png")
    first.convert("RGBA").save(images / "rgba.png")
    (images / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = root / "out"
    result = _run(["-m", "core.tools.predict", str(DEMO), str(tiny_demo.checkpoint),
                   str(images), "--out", str(out), "--score-thr", SCORE_THR, "--batch-size",
                   "4", "--coco", *head], tiny_demo.env, root)
    return reference, images, out, result


def test_good_images_are_drawn_and_the_bad_one_named(predicted):
    reference, images, out, result = predicted
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"skipped: {images / 'broken.jpg'}: not a decodable image" in result.stderr
    payload = json.loads((out / "predictions.json").read_text())
    assert payload["skipped"][0]["file"] == str(images / "broken.jpg")
    files = sorted(Path(i["file"]).name for i in payload["images"])
    assert files == sorted([*(Path(r["img_path"]).name for r in reference), "gray.png",
                            "rgba.png"])
    for entry in payload["images"]:
        drawn = Image.open(out / (Path(entry["file"]).stem + ".png"))
        assert drawn.mode == "RGB" and drawn.size == (entry["width"], entry["height"])
        for det in entry["detections"]:
            assert det["class"] == payload["classes"][det["label"]]
    assert "skipped 1 unreadable" in result.stdout


def test_boxes_equal_the_test_predictions_of_the_same_images(predicted):
    reference, _, out, _ = predicted
    by_name = {Path(i["file"]).name: i for i in json.loads((out / "predictions.json")
                                                           .read_text())["images"]}
    compared = 0
    for record in reference:
        entry = by_name[Path(record["img_path"]).name]
        keep = [i for i, s in enumerate(record["scores"]) if s >= float(SCORE_THR)]
        order = sorted(keep, key=lambda i: -record["scores"][i])
        dets = entry["detections"]
        assert len(dets) == len(order) > 0
        np.testing.assert_allclose([d["score"] for d in dets],
                                   [record["scores"][i] for i in order], atol=1e-6)
        np.testing.assert_allclose([d["box"] for d in dets],
                                   [record["boxes"][i] for i in order], atol=1e-3)
        assert [d["label"] for d in dets] == [record["labels"][i] for i in order]
        compared += len(dets)
    assert compared > 0


def test_coco_results_match_the_detections(predicted):
    _, _, out, _ = predicted
    payload = json.loads((out / "predictions.json").read_text())
    coco = json.loads((out / "predictions_coco.json").read_text())
    assert len(coco) == sum(len(i["detections"]) for i in payload["images"])
    entry = next(i for i in payload["images"] if i["detections"])
    det = entry["detections"][0]
    first = next(c for c in coco if c["image_id"] == entry["id"])
    x1, y1, x2, y2 = det["box"]
    assert first["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1])
    assert first["category_id"] == det["label"] + 1


def test_collect_images_takes_files_folders_and_globs(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/1.jpg", "a/2.PNG", "a/notes.txt", "b.webp"):
        (tmp_path / name).write_bytes(b"x")
    found = collect_images([str(tmp_path / "a"), str(tmp_path / "*.webp"),
                            str(tmp_path / "a" / "1.jpg")])
    assert found == [tmp_path / "a/1.jpg", tmp_path / "a/2.PNG", tmp_path / "b.webp"]
    with pytest.raises(DataError, match=r"nothing\.jpg: no such image file or folder"):
        collect_images([str(tmp_path / "nothing.jpg")])


def test_missing_source_exits_2(tiny_demo, tmp_path):
    result = _run(["-m", "core.tools.predict", str(DEMO), str(tiny_demo.checkpoint),
                   str(tmp_path / "none"), "--out", str(tmp_path / "o")], tiny_demo.env,
                  tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'none'}: no such image file or folder, or no image matches it"]


def test_tta_runs_and_keeps_original_pixels(predicted, tiny_demo, tmp_path):
    _, images, _, _ = predicted
    result = _run(["-m", "core.tools.predict", str(DEMO), str(tiny_demo.checkpoint),
                   str(images / "gray.png"), "--out", str(tmp_path), "--tta", "--score-thr",
                   SCORE_THR, "--set", f"model.head.postprocess.score_thr={SCORE_THR}"],
                  tiny_demo.env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (entry,) = json.loads((tmp_path / "predictions.json").read_text())["images"]
    boxes = np.array([d["box"] for d in entry["detections"]])
    assert len(boxes) > 0
    assert (boxes >= 0).all() and (boxes[:, 0::2] <= entry["width"]).all()
