"""Components for visualization hook tests: image files on disk and an oracle detector."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch import nn

import core.plugins
from core import impl
from core.hookspecs import Register
from core.structures import DetBatch, DetSample, Instances
from core.visualization.backends.base import BaseVisBackend

ORIGINAL_SIZE = 48
SCALE = 0.5  # samples are resized by this factor, so gt and predictions live in different frames
FALSE_POSITIVE_SCORE = 0.4


def square_of(index: int) -> list[float]:
    """The object box of image ``index`` in original pixels."""
    x0 = 4 + 3 * index
    return [float(x0), 8.0, float(x0 + 20), 30.0]


class DiskImageDataset(torch.utils.data.Dataset):
    """PNG images with one filled square each, written to ``root``; class = index % 2."""

    classes = ("even", "odd")

    def __init__(self, root: str = "", num_images: int = 4,
                 pipeline: list[dict] | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.num_images = num_images
        for index in range(num_images):
            path = self.root / f"img{index}.png"
            if not path.exists():
                pixels = np.full((ORIGINAL_SIZE, ORIGINAL_SIZE, 3), 30, np.uint8)
                x1, y1, x2, y2 = (int(v) for v in square_of(index))
                pixels[y1:y2, x1:x2] = (200, 200, 60)
                Image.fromarray(pixels).save(path)

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, key: int | tuple[int, int]) -> DetSample:
        index = key[0] if isinstance(key, tuple) else key  # the sampler may add a seed
        size = int(ORIGINAL_SIZE * SCALE)
        pixels = Image.open(self.root / f"img{index}.png").resize((size, size))
        image = torch.from_numpy(np.asarray(pixels).copy()).permute(2, 0, 1).float() / 255
        box = torch.tensor([square_of(index)]) * SCALE
        return DetSample(
            img_id=index, img_path=str(self.root / f"img{index}.png"),
            ori_shape=(ORIGINAL_SIZE, ORIGINAL_SIZE), img_shape=(size, size),
            pad_shape=(size, size), scale_factor=(SCALE, SCALE), image=image,
            gt=Instances(box, torch.tensor([index % 2])),
        )


class OracleDetector(nn.Module):
    """Trains a small conv net; predicts the true box (score 0.9) plus a false box (0.4)."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(width, 2, 1)

    def loss(self, batch: DetBatch) -> dict[str, torch.Tensor]:
        logits = self.head(self.backbone(batch.images)).mean(dim=(2, 3))
        labels = torch.stack([s.gt.labels[0] for s in batch.samples])
        return {"loss_cls": nn.functional.cross_entropy(logits, labels)}

    def predict(self, batch: DetBatch) -> list[Instances]:
        preds = []
        for sample in batch.samples:
            true_box = sample.gt.boxes / SCALE
            false_box = torch.tensor([[30.0, 34.0, 46.0, 46.0]])
            preds.append(Instances(
                torch.cat([true_box, false_box]),
                torch.cat([sample.gt.labels, sample.gt.labels]),
                torch.tensor([0.9, FALSE_POSITIVE_SCORE]),
            ))
        return preds


class CountMetric:
    """Number of evaluated images."""

    def __init__(self) -> None:
        self.dataset_meta: dict[str, Any] = {}
        self.count = 0

    def reset(self) -> None:
        self.count = 0

    def process(self, samples: list[DetSample]) -> None:
        self.count += len(samples)

    def evaluate(self) -> dict[str, float]:
        return {"toy/count": float(self.count)}


class RecordingVisBackend(BaseVisBackend):
    """Keeps histograms and texts in memory (class-level, so tests can read them)."""

    histograms: ClassVar[dict[str, list[tuple[int, torch.Tensor]]]] = {}
    texts: ClassVar[dict[str, str]] = {}
    watched: ClassVar[list[nn.Module]] = []

    def add_config(self, config: dict[str, Any]) -> None:
        pass

    def add_image(self, name: str, image: np.ndarray, step: int = 0) -> None:
        pass

    def add_scalars(self, scalars: dict[str, float], step: int = 0) -> None:
        pass

    def add_histogram(self, name: str, values: Any, step: int = 0) -> None:
        self.histograms.setdefault(name, []).append((step, torch.as_tensor(values).clone()))

    def add_text(self, name: str, text: str, step: int = 0) -> None:
        self.texts[name] = text

    def watch(self, model: nn.Module) -> None:
        self.watched.append(model)


class VisToyPlugin:
    @impl
    def register_detectors(self, register: Register) -> None:
        register("OracleDetector", OracleDetector)

    @impl
    def register_datasets(self, register: Register) -> None:
        register("DiskImageDataset", DiskImageDataset)

    @impl
    def register_metrics(self, register: Register) -> None:
        register("CountMetric", CountMetric)

    @impl
    def register_vis_backends(self, register: Register) -> None:
        register("RecordingVisBackend", RecordingVisBackend)


def install(monkeypatch: Any) -> None:
    """Make the process-wide plugin manager include :class:`VisToyPlugin` for one test."""
    manager = core.plugins.PluginManager().load(extra={"vistoy": VisToyPlugin()})
    monkeypatch.setattr(core.plugins, "get_plugin_manager", functools.cache(lambda: manager))
    RecordingVisBackend.histograms = {}
    RecordingVisBackend.texts = {}
    RecordingVisBackend.watched = []


def toy_config(data_root: str, custom_hooks: list[dict], **overrides: Any) -> dict[str, Any]:
    loader = {"batch_size": 2, "num_workers": 0,
              "dataset": {"type": "DiskImageDataset", "root": data_root}}
    cfg: dict[str, Any] = {
        "seed": 0,
        "device": "cpu",
        "model": {"type": "OracleDetector"},
        "train_dataloader": {**loader, "shuffle": True},
        "val_dataloader": loader,
        "val_evaluator": {"type": "CountMetric"},
        "optim": {"type": "SGD", "lr": 0.01},
        "train": {"max_epochs": 2, "val_interval": 1, "test_at_end": True},
        "default_hooks": {"logger": {"interval": 1}},
        "custom_hooks": custom_hooks,
        "vis_backends": [{"type": "LocalVisBackend"}, {"type": "RecordingVisBackend"}],
    }
    cfg.update(overrides)
    return cfg
