"""Tools facing awkward input: globs through symlink loops, ``--out`` naming a file, and
images whose header announces more pixels than is sensible to decode."""

from __future__ import annotations

import json
import logging
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from core.data.datasets.voc import VocDataset
from core.data.transforms import loading
from core.data.transforms.loading import LoadImage, read_image
from core.errors import ConfigError, DataError
from core.tools.predict import collect_images

from .conftest import DEMO

MAX_PIXELS_ENV = "PLUGDET_MAX_IMAGE_PIXELS"
HUGE = 12000  # 144 megapixels: above the default limit, a few kB as a 1-bit PNG


def _run(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False,
                          cwd=cwd, env=env or {**os.environ})


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body)))


def huge_png(path: Path, width: int = HUGE, height: int = HUGE) -> Path:
    """A valid all-black 1-bit grayscale PNG of ``width`` x ``height``: tiny on disk."""
    row = b"\x00" + bytes((width + 7) // 8)  # filter byte "none", then the packed pixels
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                     + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b""))
    return path


def _jpeg(path: Path, size: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(path)
    return path


def _voc(root: Path, image: Path, recorded: tuple[int, int]) -> None:
    """A one-image VOC set (``Annotations``, ``JPEGImages``, ``train.txt``) using ``image``."""
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    image.rename(root / "JPEGImages" / image.name)
    (root / "Annotations" / f"{image.stem}.xml").write_text(
        f"<annotation><filename>{image.name}</filename><size><width>{recorded[0]}</width>"
        f"<height>{recorded[1]}</height></size><object><name>cat</name><bndbox><xmin>1</xmin>"
        "<ymin>1</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object></annotation>")
    (root / "train.txt").write_text(f"{image.stem}\n")


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any image decoder runs (torchvision's or PIL's)."""
    def refuse(*args, **kwargs):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(loading, "decode_image", refuse)
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr(Image.Image, "load", refuse)


# --- sources: each real file once -------------------------------------------------------------

@pytest.fixture
def looped(tmp_path) -> Path:
    """``root/a.jpg``, ``root/sub/b.jpg`` and ``root/sub/up`` -> ``root`` (a loop)."""
    root = tmp_path / "shots"
    _jpeg(root / "a.jpg")
    _jpeg(root / "sub" / "b.jpg")
    (root / "sub" / "up").symlink_to(root, target_is_directory=True)
    return root


def test_recursive_glob_through_a_symlink_loop_finds_each_file_once(looped):
    assert collect_images([f"{looped}/**/*.jpg"]) == [looped / "a.jpg", looped / "sub/b.jpg"]


def test_recursive_glob_through_two_loops_ends_and_finds_each_file_once(looped):
    # two links to the parent at every level: following them would double the paths per level
    (looped / "sub" / "again").symlink_to(looped, target_is_directory=True)
    (looped / "back").symlink_to(looped / "sub", target_is_directory=True)
    found = collect_images([f"{looped}/**/*.jpg"])
    assert sorted(os.path.realpath(p) for p in found) == [
        os.path.realpath(looped / "a.jpg"), os.path.realpath(looped / "sub/b.jpg")]


def test_one_file_named_several_ways_is_collected_once(looped, tmp_path):
    (tmp_path / "alias.jpg").symlink_to(looped / "a.jpg")
    found = collect_images([str(looped / "a.jpg"), str(tmp_path / "alias.jpg"),
                            f"{looped}/./a.jpg", f"{looped}/sub/up/*.jpg", str(looped)])
    assert found == [looped / "a.jpg"]


def test_recursive_glob_still_enters_symlinked_folders(tmp_path):
    _jpeg(tmp_path / "elsewhere" / "c.jpg")
    (tmp_path / "shots").mkdir()
    (tmp_path / "shots" / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert collect_images([f"{tmp_path}/shots/**/*.jpg"]) == [tmp_path / "shots/linked/c.jpg"]


def test_relative_recursive_glob_keeps_relative_paths(looped, monkeypatch):
    monkeypatch.chdir(looped)
    assert collect_images(["**/*.jpg"]) == [Path("a.jpg"), Path("sub/b.jpg")]


def test_predict_through_a_symlink_loop_predicts_each_file_once(tiny_demo, looped, tmp_path):
    out = tmp_path / "out"
    result = _run(["-m", "core.tools.predict", str(DEMO), str(tiny_demo.checkpoint),
                   f"{looped}/**/*.jpg", "--out", str(out)], tmp_path, tiny_demo.env)
    assert result.returncode == 0, result.stderr[-3000:]
    files = [i["file"] for i in json.loads((out / "predictions.json").read_text())["images"]]
    assert sorted(files) == [str(looped / "a.jpg"), str(looped / "sub/b.jpg")]
    assert result.stdout.startswith("2 images, ")


# --- --out naming something that is not a folder -------------------------------------------

def _single_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    return line


def test_predict_out_an_existing_file_is_one_error_line(tmp_path):
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me")
    image = _jpeg(tmp_path / "a.jpg")
    result = _run(["-m", "core.tools.predict", str(DEMO), str(tmp_path / "model.pth"),
                   str(image), "--out", str(taken)], tmp_path)
    assert _single_error_line(result) == f"error: --out {taken}: exists and is not a folder"
    assert taken.read_text() == "keep me"


def test_predict_out_below_a_file_is_one_error_line(tmp_path):
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me")
    image = _jpeg(tmp_path / "a.jpg")
    result = _run(["-m", "core.tools.predict", str(DEMO), str(tmp_path / "model.pth"),
                   str(image), "--out", str(taken / "predictions")], tmp_path)
    assert _single_error_line(result) == (
        f"error: --out {taken / 'predictions'}: {taken} is a file, not a folder")


def test_voc2yolo_out_an_existing_file_is_one_error_line(tmp_path):
    _voc(tmp_path / "voc", _jpeg(tmp_path / "a.jpg", (60, 40)), (60, 40))
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me")
    result = _run(["-m", "core.tools.voc2yolo", str(tmp_path / "voc"), "--split",
                   "train=train.txt", "--out", str(taken)], tmp_path)
    assert _single_error_line(result) == f"error: --out {taken}: exists and is not a folder"
    assert taken.read_text() == "keep me"


def test_voc2yolo_still_converts_into_a_new_folder(tmp_path):
    _voc(tmp_path / "voc", _jpeg(tmp_path / "a.jpg", (60, 40)), (60, 40))
    result = _run(["-m", "core.tools.voc2yolo", str(tmp_path / "voc"), "--split",
                   "train=train.txt", "--out", str(tmp_path / "yolo")], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "yolo/labels/train/a.txt").read_text().startswith("0 ")


def test_export_out_an_existing_folder_is_one_error_line(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    result = _run(["-m", "core.tools.export", str(DEMO), str(tmp_path / "model.pth"),
                   "--out", str(folder)], tmp_path)
    assert _single_error_line(result) == (
        f"error: --out {folder}: is a folder; give a file name such as {folder / 'model.onnx'}")


def test_export_out_below_a_file_is_one_error_line(tmp_path):
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me")
    result = _run(["-m", "core.tools.export", str(DEMO), str(tmp_path / "model.pth"),
                   "--out", str(taken / "m.onnx")], tmp_path)
    assert _single_error_line(result) == (
        f"error: --out {taken / 'm.onnx'}: {taken} is a file, not a folder")


# --- pixel limit, checked from the header before any decoding ----------------------------

def test_huge_png_is_refused_from_its_header_without_decoding(tmp_path, monkeypatch,
                                                             no_decoding):
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    path = huge_png(tmp_path / "huge.png")
    assert path.stat().st_size < 100_000
    with pytest.raises(DataError) as caught:
        read_image(path)
    assert str(caught.value) == (
        f"{path}: 12000x12000 image (144.0 megapixels) exceeds the limit of 100000000 pixels; "
        f"to read it, set the environment variable PLUGDET_MAX_IMAGE_PIXELS=144000000 "
        f"(or more)")


def test_images_above_pils_own_limit_get_the_same_message(tmp_path, monkeypatch, no_decoding):
    # 400 megapixels: PIL alone would raise its DecompressionBombError on opening
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    path = huge_png(tmp_path / "bigger.png", 20000, 20000)
    with pytest.raises(DataError, match=r"bigger\.png: 20000x20000 image \(400\.0 megapixels"):
        read_image(path)


def test_the_limit_is_raised_by_the_environment(tmp_path, monkeypatch):
    path = huge_png(tmp_path / "huge.png")
    decoded = []

    def fake_decode(data, mode, apply_exif_orientation):
        decoded.append(len(data))
        return torch.zeros((3, 2, 2), dtype=torch.uint8)

    monkeypatch.setattr(loading, "decode_image", fake_decode)
    monkeypatch.setenv(MAX_PIXELS_ENV, "144000000")
    assert read_image(path).shape == (3, 2, 2)
    assert decoded == [path.stat().st_size]
    monkeypatch.setenv(MAX_PIXELS_ENV, "143999999")
    with pytest.raises(DataError, match="exceeds the limit of 143999999 pixels"):
        read_image(path)


@pytest.mark.parametrize("value", ["lots", "0", "-5", "1.5e8"])
def test_a_bad_limit_in_the_environment_is_a_config_error(value, tmp_path, monkeypatch):
    monkeypatch.setenv(MAX_PIXELS_ENV, value)
    with pytest.raises(ConfigError) as caught:
        read_image(_jpeg(tmp_path / "a.jpg"))
    assert str(caught.value) == (f"PLUGDET_MAX_IMAGE_PIXELS={value!r}: expected a whole "
                                 f"number of pixels above 0 (default 100000000)")


def test_small_images_still_decode(tmp_path, monkeypatch):
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    assert read_image(_jpeg(tmp_path / "a.jpg", (40, 30))).shape == (3, 30, 40)


def test_dataset_sample_of_a_huge_image_names_the_file(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    _voc(tmp_path, huge_png(tmp_path / "huge.png"), (HUGE, HUGE))
    layout = {"data_root": str(tmp_path), "ann_dir": "Annotations", "img_dir": "JPEGImages",
              "split_file": "train.txt", "classes": ["cat"], "pipeline": [LoadImage()]}
    huge = tmp_path / "JPEGImages" / "huge.png"
    with pytest.raises(DataError, match=rf"{huge}: 12000x12000 image \(144\.0 megapixels\) "
                                        "exceeds the limit"):
        VocDataset(**layout, strict=True)[0]
    with caplog.at_level(logging.WARNING, "plugdet.data"), pytest.raises(DataError):
        VocDataset(**layout)[0]  # the only sample: no replacement left
    assert f"{huge}: 12000x12000 image (144.0 megapixels) exceeds the limit" in caplog.text


def test_dataset_build_reads_the_header_of_an_image_above_pils_limit(tmp_path, monkeypatch):
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    _voc(tmp_path, huge_png(tmp_path / "bigger.png", 20000, 20000), (20000, 20000))
    dataset = VocDataset(data_root=str(tmp_path), ann_dir="Annotations", img_dir="JPEGImages",
                         split_file="train.txt", classes=["cat"], pipeline=[LoadImage()],
                         strict=True)
    assert len(dataset) == 1 and dataset.skipped == {}
    with pytest.raises(DataError, match=r"bigger\.png: 20000x20000 image"):
        dataset[0]


def test_predict_skips_a_huge_image_with_its_name(tiny_demo, tmp_path):
    path = huge_png(tmp_path / "huge.png")
    env = {k: v for k, v in tiny_demo.env.items() if k != MAX_PIXELS_ENV}
    result = _run(["-m", "core.tools.predict", str(DEMO), str(tiny_demo.checkpoint),
                   str(path), str(_jpeg(tmp_path / "small.jpg")), "--out",
                   str(tmp_path / "out")], tmp_path, env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (f"skipped: {path}: 12000x12000 image (144.0 megapixels) exceeds the limit of "
            "100000000 pixels; to read it, set the environment variable "
            "PLUGDET_MAX_IMAGE_PIXELS=144000000 (or more)") in result.stderr.splitlines()
    payload = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [s["file"] for s in payload["skipped"]] == [str(path)]
