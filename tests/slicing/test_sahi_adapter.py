"""The SAHI adapter without SAHI: a stand-in ``sahi`` package records what the adapter hands
to SAHI's ``ObjectPrediction`` (box in slice pixels, shift, full shape, class id and name,
scores above the threshold only)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from core.integrations import sahi_model
from core.integrations.sahi_model import PlugdetPredictor, detection_rows, image_tensor
from core.structures import Instances


class FakeDetectionModel:
    """The part of ``sahi.models.base.DetectionModel`` the adapter relies on."""

    def __init__(self, model_path=None, model=None, config_path=None, device=None,
                 confidence_threshold=0.3, category_mapping=None, load_at_init=True, **_):
        self.model_path, self.config_path, self.device = model_path, config_path, device
        self.confidence_threshold = confidence_threshold
        self.category_mapping = category_mapping
        self._original_predictions = None
        self._object_prediction_list_per_image = None
        if load_at_init:
            self.set_model(model) if model is not None else self.load_model()


class FakeObjectPrediction:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


@pytest.fixture
def fake_sahi(monkeypatch):
    package = types.ModuleType("sahi")
    models, base = types.ModuleType("sahi.models"), types.ModuleType("sahi.models.base")
    prediction = types.ModuleType("sahi.prediction")
    base.DetectionModel = FakeDetectionModel
    prediction.ObjectPrediction = FakeObjectPrediction
    for name, module in [("sahi", package), ("sahi.models", models),
                         ("sahi.models.base", base), ("sahi.prediction", prediction)]:
        monkeypatch.setitem(sys.modules, name, module)
    sahi_model._adapter_class.cache_clear()
    yield
    sahi_model._adapter_class.cache_clear()


class ScriptedPredictor(PlugdetPredictor):
    """Returns set detections per image and records the images it was given."""

    def __init__(self):
        super().__init__(torch.nn.Identity(), [], torch.device("cpu"), classes=("cat", "dog"))
        self.seen: list[tuple[int, ...]] = []

    def predict(self, images):
        self.seen += [tuple(i.shape) for i in images]
        return [Instances(torch.tensor([[1.0, 2.0, 30.0, 40.0], [5.0, 5.0, 9.0, 9.0]]),
                          torch.tensor([1, 0]), torch.tensor([0.8, 0.2]))
                for _ in images]


def test_images_and_rows_convert_as_sahi_expects():
    gray = np.zeros((4, 6), dtype=np.uint8)
    assert tuple(image_tensor(gray).shape) == (3, 4, 6)
    rgba = np.zeros((4, 6, 4), dtype=np.uint8)
    rgba[..., 2] = 7
    assert image_tensor(rgba)[2].unique().tolist() == [7]
    dets = Instances(torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 3), torch.tensor([0, 1, 1]),
                     torch.tensor([0.3, 0.31, 0.9]))
    rows = detection_rows(dets, 0.3)
    assert [r[2] for r in rows] == [1, 1] and rows[1][1] == pytest.approx(0.9)


def test_adapter_hands_slice_boxes_with_their_shift_to_sahi(fake_sahi):
    predictor = ScriptedPredictor()
    model = sahi_model.PlugdetDetectionModel(model=predictor, confidence_threshold=0.5)
    assert type(model).__name__ == "PlugdetDetectionModel"
    assert model.category_mapping == {"0": "cat", "1": "dog"}
    assert model.num_categories == 2 and model.category_names == ["cat", "dog"]
    model.perform_batch_inference([np.zeros((64, 48, 3), np.uint8)] * 2)
    assert predictor.seen == [(3, 64, 48), (3, 64, 48)]
    model._create_object_prediction_list_from_original_predictions(
        shift_amount_list=[[0, 0], [38, 10]], full_shape_list=[[100, 200], [100, 200]])
    per_image = model._object_prediction_list_per_image
    assert [len(p) for p in per_image] == [1, 1]
    second = per_image[1][0].kwargs
    assert second["bbox"] == [1.0, 2.0, 30.0, 40.0] and second["shift_amount"] == [38, 10]
    assert second["full_shape"] == [100, 200]
    assert second["category_id"] == 1 and second["category_name"] == "dog"
    assert second["score"] == pytest.approx(0.8)
    model.perform_inference(np.zeros((10, 10, 3), np.uint8))
    model._create_object_prediction_list_from_original_predictions([0, 0], [10, 10])
    assert model._object_prediction_list_per_image[0][0].kwargs["full_shape"] == [10, 10]


def test_without_sahi_the_adapter_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sahi", None)
    monkeypatch.setitem(sys.modules, "sahi.models.base", None)
    sahi_model._adapter_class.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"plugdet\[sahi\]"):
            sahi_model.PlugdetDetectionModel  # noqa: B018
    finally:
        sahi_model._adapter_class.cache_clear()
