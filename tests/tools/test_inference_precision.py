"""``plugdet predict`` and ``plugdet analyze`` run the model in the config's precision, as
training's validation and ``plugdet test`` do."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from core.structures import DetBatch, DetSample, Instances
from core.tools.analyze import predict_split
from core.tools.predict import Predictor


class PrecisionProbe(nn.Module):
    """Predicts one box per image and records the autocast state of each call."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.dtype | None] = []

    def predict(self, batch: DetBatch) -> list[Instances]:
        enabled = torch.is_autocast_enabled("cpu")
        self.seen.append(torch.get_autocast_dtype("cpu") if enabled else None)
        return [Instances(torch.zeros(1, 4), torch.zeros(1, dtype=torch.long), torch.ones(1))
                for _ in batch.samples]


def _sample() -> DetSample:
    shape = (8, 8)
    return DetSample(img_id=0, img_path="a.png", ori_shape=shape, img_shape=shape,
                     pad_shape=shape, image=torch.zeros(3, 8, 8))


def _batch() -> DetBatch:
    return DetBatch(torch.zeros(1, 3, 8, 8), [_sample()])


@pytest.mark.parametrize("dtype", [torch.bfloat16, None])
def test_predictor_forward_uses_the_config_precision(dtype):
    probe = PrecisionProbe()
    predictor = Predictor(probe, [], torch.device("cpu"), amp_dtype=dtype)
    predictor._predict_batch(_batch())  # the sliced path
    predictor.predict([_sample()])
    assert probe.seen == [dtype, dtype]


@pytest.mark.parametrize("dtype", [torch.bfloat16, None])
def test_analyze_predicts_in_the_run_precision(dtype):
    probe = PrecisionProbe()
    predict_split(probe, [_batch()], torch.device("cpu"), dtype)
    assert probe.seen == [dtype]
