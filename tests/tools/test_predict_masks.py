"""predict, ``--test --out`` and export with a model that predicts instance masks: RLEs of
the original image in the JSON files, masks drawn in the pictures, sliced prediction refused,
an ONNX model with a ``masks`` output equal to PyTorch's.

Stub detectors stand in for trained models: one "finds" an ellipse per image (box and mask
derived from the original image size) and a low-scoring box; one implements
``export_outputs`` with masks that follow the pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from torch import nn

from core.engine.runner import _prediction_record
from core.structures import DetBatch, DetSample, Instances
from core.tools import export, predict
from core.visualization.colors import class_color
from core.visualization.visualizer import MASK_ALPHA

from .conftest import DEMO

LABEL = 1


def ellipse(height: int, width: int) -> np.ndarray:
    """``(H, W)`` bool ellipse filling the middle half of the image."""
    y, x = np.mgrid[:height, :width] + 0.5
    return ((x - width / 2) / (width / 4)) ** 2 + ((y - height / 2) / (height / 4)) ** 2 <= 1


class MaskStub(nn.Module):
    """``predict``: per image the ellipse (score 0.9) and a second mask scoring 0.1."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))

    def predict(self, batch: DetBatch) -> list[Instances]:
        preds = []
        for sample in batch.samples:
            height, width = sample.ori_shape
            masks = torch.zeros((2, height, width), dtype=torch.bool)
            masks[0] = torch.from_numpy(ellipse(height, width))
            masks[1, :4, :4] = True
            boxes = torch.tensor([[width / 4, height / 4, 3 * width / 4, 3 * height / 4],
                                  [0.0, 0.0, 4.0, 4.0]])
            preds.append(Instances(boxes, torch.tensor([LABEL, 0]), torch.tensor([0.9, 0.1]),
                                   masks))
        return preds


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("a.png", (90, 120)), ("b.png", (64, 48))):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / name)
    return folder


@pytest.fixture
def stub(monkeypatch):
    monkeypatch.setattr(predict, "load_detector", lambda cfg, checkpoint, device: MaskStub())


def test_predictions_json_has_rles_and_the_pictures_show_the_masks(stub, images, tmp_path):
    out = tmp_path / "out"
    status = predict.main([str(DEMO), "unused.pth", str(images), "--out", str(out), "--coco",
                           "--score-thr", "0.5", "--device", "cpu"])
    assert status == 0
    payload = json.loads((out / "predictions.json").read_text())
    coco = json.loads((out / "predictions_coco.json").read_text())
    assert len(payload["images"]) == 2 and len(coco) == 2
    for entry in payload["images"]:
        height, width = entry["height"], entry["width"]
        (det,) = entry["detections"]  # the 0.1 one is below --score-thr
        rle = det["segmentation"]
        assert rle["size"] == [height, width] and isinstance(rle["counts"], str)
        np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool),
                                      ellipse(height, width))
        (coco_entry,) = [c for c in coco if c["image_id"] == entry["id"]]
        assert coco_entry["segmentation"] == rle
        original = np.asarray(Image.open(entry["file"]).convert("RGB"))
        drawn = np.asarray(Image.open(out / (Path(entry["file"]).stem + ".png")))
        tinted = (original * (1 - MASK_ALPHA) + np.asarray(class_color(LABEL)) * MASK_ALPHA
                  ).round().astype(np.uint8)
        core = ellipse(height, width) & np.roll(ellipse(height, width), height // 8, axis=0)
        core[: height // 2] = False  # the lower part: clear of the box edges and the label
        inner = np.zeros_like(core)
        inner[height // 4 + 3: 3 * height // 4 - 3, width // 4 + 3: 3 * width // 4 - 3] = True
        core &= inner
        assert core.sum() > 20
        np.testing.assert_array_equal(drawn[core], tinted[core])
        outside = ~np.zeros_like(core)  # left of and below the box (the label is above it)
        outside[: 3 * height // 4 + 3, width // 4 - 3:] = False
        np.testing.assert_array_equal(drawn[outside], original[outside])


def test_sliced_prediction_refuses_masks(stub, images, tmp_path, capsys):
    status = predict.main([str(DEMO), "unused.pth", str(images), "--out",
                           str(tmp_path / "sliced"), "--slice", "32", "--device", "cpu"])
    assert status != 0
    assert "--slice: the model predicts instance masks" in capsys.readouterr().err


def test_detection_records_without_masks_have_no_segmentation():
    result = predict.ImageResult(0, Path("x.png"), 10, 10, Instances(
        torch.tensor([[1.0, 1.0, 5.0, 5.0]]), torch.tensor([0]), torch.tensor([0.9])))
    (record,) = predict.detection_records(result, ("a",), 0.3)
    assert "segmentation" not in record
    assert "segmentation" not in predict.coco_records(0, [record])[0]


def test_test_out_records_carry_the_predicted_masks():
    sample = DetSample(img_id=3, img_path="c.png", ori_shape=(30, 40), img_shape=(30, 40))
    batch = DetBatch(torch.zeros((1, 3, 30, 40)), [sample])
    sample.pred = MaskStub().predict(batch)[0]
    record = json.loads(json.dumps(_prediction_record(sample)))
    assert len(record["segmentation"]) == len(record["boxes"]) == 2
    for rle, mask in zip(record["segmentation"], sample.pred.masks.numpy(), strict=True):
        np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), mask)
    sample.pred.masks = None
    assert "segmentation" not in _prediction_record(sample)


class ExportStub(nn.Module):
    """``export_outputs``: K = 3 rows per image, the first two real: label 1 with the pixels
    whose channel 0 exceeds ``threshold``, label 0 with those whose channel 1 is negative;
    the third unused. ``predict`` gives the same detections as :class:`Instances`."""

    def __init__(self) -> None:
        super().__init__()
        self.threshold = nn.Parameter(torch.tensor(0.5))

    def export_outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        masks = torch.stack([images[:, 0] > self.threshold, images[:, 1] < 0,
                             torch.zeros_like(images[:, 0], dtype=torch.bool)], dim=1)
        batch = images.shape[0]
        boxes = torch.tensor([[1.0, 2.0, 30.0, 40.0], [5.0, 6.0, 20.0, 25.0],
                              [0.0, 0.0, 0.0, 0.0]]).expand(batch, 3, 4)
        mean = torch.sigmoid(images.mean(dim=(1, 2, 3)))[:, None]
        scores = torch.cat([mean, 0.5 * mean, torch.zeros_like(mean)], dim=1)
        labels = torch.tensor([1, 0, 0]).expand(batch, 3)
        return boxes, scores, labels, masks

    def predict(self, batch: DetBatch) -> list[Instances]:
        boxes, scores, labels, masks = self.export_outputs(batch.images)
        return [Instances(b[s > 0], lab[s > 0], s[s > 0], m[s > 0])
                for b, s, lab, m in zip(boxes, scores, labels, masks, strict=True)]


@pytest.mark.parametrize("dynamic", [False, True])
def test_export_writes_masks_equal_to_pytorch(monkeypatch, tmp_path, dynamic):
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(export, "load_detector", lambda cfg, checkpoint, device: ExportStub())
    out = tmp_path / "stub.onnx"
    status = export.main([str(DEMO), "unused.pth", "--size", "48", "64", "--out", str(out),
                          *(["--dynamic"] if dynamic else [])])
    assert status == 0
    images = torch.randn((2, 3, 40, 56)) if dynamic else torch.randn((1, 3, 48, 64))
    outputs = export.run_onnx(out, images)
    assert [o.shape for o in outputs] == [(len(images), 3, 4), (len(images), 3),
                                          (len(images), 3), (len(images), 3, *images.shape[2:])]
    assert outputs[3].dtype == np.bool_ and outputs[3].any()
    reference = export.torch_detections(ExportStub(), images)
    assert export.compare(reference, outputs) == []
    outputs[3][0, 1] = ~outputs[3][0, 1]  # a wrong mask is named
    (problem,) = export.compare(reference, outputs)
    assert problem.startswith("image 0: the mask of label 0") and "IoU" in problem
    assert "PyTorch gives masks, the ONNX model no masks" in export.compare(
        reference, outputs[:3])[0]
