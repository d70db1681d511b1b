"""A SAHI ``DetectionModel`` for any plugdet config and checkpoint (``pip install
plugdet[sahi]``)::

    from sahi.predict import get_sliced_prediction
    from core.integrations.sahi_model import PlugdetDetectionModel

    model = PlugdetDetectionModel(config_path="yolov8_n_small_objects.toml",
                                  model_path="best.pth", confidence_threshold=0.3)
    result = get_sliced_prediction("aerial.jpg", model, slice_height=512, slice_width=512)

Each image SAHI hands over (``(H, W, 3)`` uint8 RGB) goes through the config's test pipeline
and the detector, as ``plugdet predict`` does; a batch of slices is one forward pass. The
detections scoring above ``confidence_threshold`` become SAHI ``ObjectPrediction``s with
``category_id`` the plugdet label (0-based) and ``category_name`` the config's class name.
sahi is imported when the class is first used, never by plugdet itself.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from core.data.loader import collate_samples
from core.data.slicing.inference import window_sample
from core.structures import DetSample, Instances

SAHI_MISSING = ("sahi is not installed: pip install plugdet[sahi] (or pip install sahi) to use "
                "plugdet models from SAHI")


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """A SAHI image ``(H, W, 3)`` (or ``(H, W)`` gray) uint8 as plugdet's ``(3, H, W)``."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] < 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array[:, :, :3])).permute(2, 0, 1).contiguous()


def detection_rows(detections: Instances,
                   confidence_threshold: float) -> list[tuple[list[float], float, int]]:
    """``(box xyxy, score, label)`` of the detections scoring above the threshold (strictly,
    as SAHI's models filter), in their order."""
    assert detections.scores is not None
    keep = detections.scores > confidence_threshold
    return [(box, score, label) for box, score, label in zip(
        detections.boxes[keep].tolist(), detections.scores[keep].tolist(),
        detections.labels[keep].tolist(), strict=True)]


class PlugdetPredictor:
    """A plugdet detector and its test pipeline, predicting in-memory images.

    :param model: the detector in eval mode.
    :param transforms: the test pipeline's transforms.
    :param device: where the model runs.
    :param pad_value, size_divisor: the test loader's collate options.
    :param classes: the class names (label ``i`` is ``classes[i]``).
    """

    def __init__(self, model: torch.nn.Module, transforms: list[Any], device: torch.device,
                 pad_value: float = 0.0, size_divisor: int = 1,
                 classes: Sequence[str] = ()) -> None:
        self.model = model
        self.classes = tuple(classes)
        self.transforms = transforms
        self.device = device
        self.collate = functools.partial(collate_samples, pad_value=pad_value,
                                         size_divisor=size_divisor)
        self._rng = np.random.default_rng(0)

    @classmethod
    def from_files(cls, config_path: str, checkpoint: str, device: str = "auto",
                   overrides: Sequence[str] = ()) -> PlugdetPredictor:
        """The detector of ``config_path`` with the weights of ``checkpoint``."""
        from core.engine.full_config import load_full_config
        from core.engine.run_config import resolve_device
        from core.tools.inference import (
            build_test_transforms,
            class_names,
            eval_loader_table,
            load_detector,
        )

        cfg = load_full_config(config_path, overrides)
        where = resolve_device(device)
        _, loader = eval_loader_table(cfg)
        model = load_detector(cfg, checkpoint, where)
        classes = class_names(cfg, int(getattr(getattr(model, "head", None), "num_classes", 0)))
        return cls(model, build_test_transforms(cfg), where, float(loader.get("pad_value", 0.0)),
                   int(loader.get("size_divisor", 1)), classes)

    def prepare(self, sample: DetSample) -> DetSample:
        """The test pipeline on a sample holding its image."""
        for transform in self.transforms:
            sample = transform(sample, self._rng)
        return sample

    @torch.no_grad()
    def predict(self, images: Sequence[torch.Tensor]) -> list[Instances]:
        """Detections of images ``(3, H, W)`` uint8, one forward pass; boxes in their pixels."""
        samples = [self.prepare(window_sample(image, (0, 0, int(image.shape[2]),
                                                      int(image.shape[1]))))
                   for image in images]
        batch = self.collate(samples).to(self.device)
        return [p.to("cpu") for p in self.model.predict(batch)]


@functools.cache
def _adapter_class() -> type:
    """The SAHI subclass, built on first use (sahi imported here)."""
    try:
        from sahi.models.base import DetectionModel
        from sahi.prediction import ObjectPrediction
    except ImportError as exc:
        raise ImportError(SAHI_MISSING) from exc

    class PlugdetSahiModel(DetectionModel):  # type: ignore[misc, valid-type]
        """SAHI's view of a plugdet detector: ``config_path`` (a plugdet config) and
        ``model_path`` (its checkpoint), or ``model`` (a :class:`PlugdetPredictor`)."""

        def load_model(self) -> None:
            if not self.config_path or not self.model_path:
                raise ValueError("PlugdetDetectionModel needs config_path (a plugdet config) "
                                 "and model_path (a checkpoint of it)")
            where = "cuda" if torch.device(self.device or "cpu").type == "cuda" else "cpu"
            self.set_model(PlugdetPredictor.from_files(self.config_path, self.model_path, where))

        def set_model(self, model: Any, **kwargs: Any) -> None:
            if not isinstance(model, PlugdetPredictor):
                raise TypeError(f"expected a PlugdetPredictor, got {type(model).__name__}")
            self.model = model
            if not self.category_mapping:
                self.category_mapping = {str(i): name for i, name in enumerate(model.classes)}

        def perform_inference(self, image: np.ndarray) -> None:
            self._original_predictions = self.model.predict([image_tensor(image)])

        def perform_batch_inference(self, images: list[np.ndarray]) -> None:
            self._original_predictions = self.model.predict([image_tensor(i) for i in images])

        @property
        def num_categories(self) -> int:
            return len(self.category_mapping or {})

        @property
        def has_mask(self) -> bool:
            return False

        @property
        def category_names(self) -> list[str]:
            return list((self.category_mapping or {}).values())

        def _create_object_prediction_list_from_original_predictions(
            self, shift_amount_list: Any = None, full_shape_list: Any = None,
        ) -> None:
            shifts = _per_image(shift_amount_list, [0, 0])
            shapes = _per_image(full_shape_list, None)
            mapping = self.category_mapping or {}
            per_image = []
            for index, detections in enumerate(self._original_predictions):
                shift = shifts[index] if index < len(shifts) else [0, 0]
                shape = shapes[index] if index < len(shapes) else None
                per_image.append([
                    ObjectPrediction(bbox=box, category_id=label,
                                     category_name=mapping.get(str(label), str(label)),
                                     score=score, shift_amount=list(shift), full_shape=shape)
                    for box, score, label in detection_rows(detections,
                                                            self.confidence_threshold)])
            self._object_prediction_list_per_image = per_image

    PlugdetSahiModel.__name__ = PlugdetSahiModel.__qualname__ = "PlugdetDetectionModel"
    return PlugdetSahiModel


def _per_image(value: Any, default: Any) -> list[Any]:
    """SAHI's shift / full-shape argument (one ``[a, b]`` or a list of them) as a list."""
    if value is None:
        return [default]
    if len(value) and isinstance(value[0], int | float):
        return [list(value)]
    return [list(v) if v is not None else None for v in value]


def __getattr__(name: str) -> Any:
    if name == "PlugdetDetectionModel":
        return _adapter_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
