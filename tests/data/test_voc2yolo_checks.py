"""voc2yolo: the converted set means what the VOC set meant (EXIF-tagged photos included),
and class names that match nothing in the annotations are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from core.data.datasets.image_size import read_header
from core.data.datasets.voc import VocDataset
from core.data.datasets.yolo import YoloDataset
from core.data.transforms.loading import LoadImage
from core.tools import voc2yolo

ORIENTATION = 0x0112
RAW_BLOCK = (8, 8, 40, 24)  # xyxy in the stored pixels of a 96x64 image


def _voc_xml(path: Path, filename: str, size: tuple[int, int], name: str,
             box: tuple[int, int, int, int]) -> None:
    coords = "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box,
                                                       strict=True))
    path.write_text(f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width>"
                    f"<height>{size[1]}</height></size><object><name>{name}</name>"
                    f"<bndbox>{coords}</bndbox></object></annotation>")


def _white_bounds(image: torch.Tensor) -> list[int]:
    ys, xs = np.nonzero(image.min(dim=0).values.numpy() > 200)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def make_photo_set(root: Path, orientation: int, frame: str, suffix: str) -> None:
    """One 96x64 photo stored with EXIF ``orientation``, a white block at ``RAW_BLOCK``; the
    XML records the size and box of the ``"raw"`` (stored) or ``"turned"`` (viewed) frame."""
    for folder in ("annotations", "images"):
        (root / folder).mkdir(parents=True)
    pixels = np.full((64, 96, 3), 40, np.uint8)
    pixels[:, :, 1] = np.arange(96, dtype=np.uint8)[None, :]  # no symmetry to hide a turn
    x1, y1, x2, y2 = RAW_BLOCK
    pixels[y1:y2, x1:x2] = 255
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    image_path = root / "images" / f"a{suffix}"
    options = {"quality": 95} if suffix == ".jpg" else {}
    Image.fromarray(pixels).save(image_path, exif=exif, **options)
    if frame == "raw":
        size, box = (96, 64), RAW_BLOCK
    else:
        with Image.open(image_path) as opened:
            viewed = ImageOps.exif_transpose(opened)
            size = viewed.size
            box = tuple(_white_bounds(torch.from_numpy(np.array(viewed)).permute(2, 0, 1)))
    _voc_xml(root / "annotations" / "a.xml", image_path.name, size, "raccoon", box)
    (root / "all.txt").write_text("a\n")


def convert(root: Path, out: Path, *extra: str) -> int:
    return voc2yolo.main([str(root), "--ann-dir", "annotations", "--img-dir", "images",
                          "--split", "train=all.txt", "--out", str(out), *extra])


@pytest.mark.parametrize(("orientation", "frame", "suffix"), [
    (6, "raw", ".jpg"), (3, "raw", ".jpg"), (8, "raw", ".png"), (6, "turned", ".jpg"),
])
@pytest.mark.parametrize("link", [False, True])
def test_exif_tagged_photo_reads_back_like_voc(tmp_path, capsys, orientation, frame, suffix,
                                               link):
    root, out = tmp_path / "voc", tmp_path / "yolo"
    make_photo_set(root, orientation, frame, suffix)
    assert convert(root, out, *(["--link"] if link else [])) == 0
    voc = VocDataset(str(root), ann_dir="annotations", img_dir="images", split_file="all.txt",
                     classes=["raccoon"], pipeline=[LoadImage()])[0]
    yolo = YoloDataset(str(out / "voc.yaml"), pipeline=[LoadImage()])[0]
    assert torch.equal(yolo.image, voc.image)  # the same pixels ...
    np.testing.assert_allclose(yolo.gt.boxes.numpy(), voc.gt.boxes.numpy(), atol=1e-3)
    assert _white_bounds(yolo.image) == [round(v) for v in yolo.gt.boxes[0].tolist()]
    written = out / "images" / "train" / f"a{suffix}"
    if frame == "raw":  # the copy carries no orientation the labels do not follow
        assert read_header(written)[2] == 1 and not written.is_symlink()
        assert "EXIF orientation" in capsys.readouterr().err
    else:
        assert written.is_symlink() == link


def test_jpeg_written_without_its_orientation_keeps_its_compressed_data(tmp_path):
    root, out = tmp_path / "voc", tmp_path / "yolo"
    make_photo_set(root, 6, "raw", ".jpg")
    assert convert(root, out) == 0
    source = (root / "images" / "a.jpg").read_bytes()
    written = (out / "images" / "train" / "a.jpg").read_bytes()
    assert len(written) == len(source)
    assert sum(a != b for a, b in zip(source, written, strict=True)) <= 2  # the tag's value


def test_classes_differing_in_case_are_refused_with_a_suggestion(tmp_path, capsys):
    root, out = tmp_path / "voc", tmp_path / "yolo"
    make_photo_set(root, 1, "raw", ".jpg")
    assert convert(root, out, "--classes", "Raccoon") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "'Raccoon'" in err and "['raccoon']" in err and "did you mean 'raccoon'" in err
    assert not (out / "voc.yaml").exists()


def test_classes_matching_nothing_are_refused(tmp_path, capsys):
    root, out = tmp_path / "voc", tmp_path / "yolo"
    make_photo_set(root, 1, "raw", ".jpg")
    assert convert(root, out, "--classes", "cat,dog") == 2
    err = capsys.readouterr().err
    assert "['cat', 'dog']" in err and "['raccoon']" in err


def test_a_listed_class_without_objects_is_kept_and_mentioned(tmp_path, capsys):
    root, out = tmp_path / "voc", tmp_path / "yolo"
    make_photo_set(root, 1, "raw", ".jpg")
    assert convert(root, out, "--classes", "raccoon,dog") == 0
    captured = capsys.readouterr()
    assert "1 boxes, 2 classes" in captured.out and "'dog'" in captured.err
    assert YoloDataset(str(out / "voc.yaml")).classes == ("raccoon", "dog")
