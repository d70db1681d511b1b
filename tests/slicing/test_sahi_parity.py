"""plugdet's sliced prediction and SAHI's ``get_sliced_prediction`` with the plugdet adapter:
the same model and slice settings give the same merged detections (to 1e-3 px).

sahi is never a dependency of plugdet: run with ``tox -e sahi``."""

from __future__ import annotations

import numpy as np
import pytest

try:
    from sahi.predict import get_sliced_prediction
except ImportError:
    pytest.skip("sahi is installed only in the tox env 'sahi'", allow_module_level=True)

from core.data.slicing import SliceSettings, predict_sliced
from core.integrations.sahi_model import PlugdetDetectionModel, PlugdetPredictor, image_tensor

from .conftest import DEMO, TINY


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint):
    return PlugdetPredictor.from_files(str(DEMO), str(tiny_checkpoint), "cpu", TINY)


def _image() -> np.ndarray:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 255, size=(300, 420, 3), dtype=np.uint8)
    pixels[40:90, 60:130] = (230, 20, 20)
    pixels[150:230, 250:330] = (20, 200, 30)
    pixels[90:140, 120:200] = (20, 30, 220)  # across a tile edge
    return pixels


def _rows(boxes, scores, labels):
    return sorted(zip([round(s, 6) for s in scores], labels, boxes, strict=True),
                  key=lambda r: (-r[0], r[1], r[2]))


@pytest.mark.parametrize(("merge", "sahi_type"), [("greedy_nmm", "GREEDYNMM"), ("nms", "NMS")])
def test_plugdet_and_sahi_merge_the_same_detections(predictor, merge, sahi_type):
    pixels = _image()
    settings = SliceSettings(size=(128, 128), overlap=(0.25, 0.25), full_image=True,
                             merge=merge, batch_size=3)
    ours = predict_sliced(image_tensor(pixels), settings,
                          lambda batch: [p.to("cpu") for p in predictor.model.predict(batch)],
                          predictor.prepare, predictor.collate)
    model = PlugdetDetectionModel(model=predictor, confidence_threshold=0.0, device="cpu")
    result = get_sliced_prediction(
        pixels, model, slice_height=128, slice_width=128, overlap_height_ratio=0.25,
        overlap_width_ratio=0.25, perform_standard_pred=True, postprocess_type=sahi_type,
        postprocess_match_metric="IOS", postprocess_match_threshold=0.5,
        postprocess_class_agnostic=False, batch_size=3, force_postprocess_type=True, verbose=0)
    theirs = result.object_prediction_list
    assert len(ours) > 5 and len(theirs) == len(ours)
    mine = _rows(ours.boxes.tolist(), ours.scores.tolist(), ours.labels.tolist())
    other = _rows([p.bbox.to_xyxy() for p in theirs], [p.score.value for p in theirs],
                  [p.category.id for p in theirs])
    for (score_a, label_a, box_a), (score_b, label_b, box_b) in zip(mine, other, strict=True):
        assert (score_a, label_a) == (score_b, label_b)
        assert np.abs(np.array(box_a) - np.array(box_b)).max() < 1e-3
