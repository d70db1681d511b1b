"""Decoding unusual image files: 16-bit PNGs and truncated JPEGs."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from core.data.datasets.voc import VocDataset
from core.data.transforms.loading import LoadImage, read_image
from core.data.transforms.photometric import Normalize, PhotoMetricDistortion
from core.errors import DataError
from core.structures import DetSample


def _voc_of_one(root, cut=20):
    """A flat VOC set of one 60x40 JPEG (cut short by ``cut`` bytes) with one box."""
    (root / "annotations").mkdir()
    (root / "images").mkdir()
    (root / "annotations" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>60</width><height>40</height>"
        "</size><object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>30</xmax>"
        "<ymax>20</ymax></bndbox></object></annotation>")
    pixels = np.random.default_rng(0).integers(0, 255, (40, 60, 3)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    (root / "images" / "a.jpg").write_bytes(buffer.getvalue()[:-cut])
    return {"data_root": str(root), "ann_dir": "annotations", "img_dir": "images",
            "split_file": ""}


def test_16_bit_png_is_scaled_to_8_bit_by_its_range(tmp_path):
    values = np.array([[0, 257 * 128, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    image = read_image(tmp_path / "deep.png")
    assert image.dtype == torch.uint8
    assert image[0].tolist() == [[0, 128, 255]]


def test_16_bit_png_goes_through_the_photometric_and_normalize_transforms(tmp_path):
    Image.fromarray(np.full((4, 5), 65535, np.uint16)).save(tmp_path / "deep.png")
    sample = LoadImage()(DetSample(img_path=str(tmp_path / "deep.png")), None)
    rng = np.random.default_rng(0)
    sample = PhotoMetricDistortion(prob=0.0)(sample, rng)
    sample = Normalize(mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0])(sample, rng)
    assert sample.image.max().item() == pytest.approx(1.0)  # not 65535 / 255


def test_truncated_jpeg_is_decoded_with_one_warning_per_file(tmp_path, caplog):
    layout = _voc_of_one(tmp_path)
    dataset = VocDataset(classes=["cat"], pipeline=[LoadImage()], **layout)
    with caplog.at_level(logging.WARNING, logger="plugdet.data"):
        first, second = dataset[0], dataset[0]
    assert first.image.shape == (3, 40, 60) and second.image.shape == (3, 40, 60)
    assert dataset.skipped == {}
    warnings = [r.getMessage() for r in caplog.records if "truncated image" in r.getMessage()]
    assert len(warnings) == 1
    assert str(tmp_path / "images" / "a.jpg") in warnings[0]


def test_truncated_jpeg_is_an_error_with_strict(tmp_path):
    layout = _voc_of_one(tmp_path)
    dataset = VocDataset(classes=["cat"], strict=True, pipeline=[LoadImage()], **layout)
    with pytest.raises(DataError, match=r"a\.jpg: .*truncated.*strict = true"):
        dataset[0]


def test_garbage_is_still_not_an_image(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8\xff" + b"garbage" * 10)
    with pytest.raises(DataError, match="not a decodable image"):
        read_image(tmp_path / "x.jpg")
