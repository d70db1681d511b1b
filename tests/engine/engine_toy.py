"""A toy detector, dataset and metric for engine tests, registered as a test plugin."""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

import core.plugins
from core import impl
from core.engine import dist
from core.engine.message_hub import MessageHub
from core.hookspecs import Register
from core.structures import DetBatch, DetSample, Instances, collate
from core.visualization import BaseVisBackend

IMAGE_SIZE = 16


class ToyDataset(torch.utils.data.Dataset):
    """Images with one bright box; a random brightness change drawn from torch's global RNG
    (like a third-party transform) so that resuming must restore generator states."""

    classes = ("a", "b")

    def __init__(self, num_images: int = 16, augment: bool = True,
                 pipeline: list[dict] = []) -> None:  # noqa: B006
        self.num_images = num_images
        self.augment = augment

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, key: int | tuple[int, int]) -> DetSample:
        index = key[0] if isinstance(key, tuple) else key
        gen = torch.Generator().manual_seed(index)
        x0, y0 = torch.randint(0, IMAGE_SIZE // 2, (2,), generator=gen).tolist()
        size = IMAGE_SIZE // 2
        label = index % 2
        image = torch.zeros(3, IMAGE_SIZE, IMAGE_SIZE)
        image[label, y0:y0 + size, x0:x0 + size] = 1.0
        if self.augment:
            image = image * (0.8 + 0.4 * torch.rand(1))  # global RNG on purpose
        box = torch.tensor([[x0, y0, x0 + size, y0 + size]], dtype=torch.float32)
        shape = (IMAGE_SIZE, IMAGE_SIZE)
        return DetSample(img_id=index, ori_shape=shape, img_shape=shape, pad_shape=shape,
                         image=image, gt=Instances(box, torch.tensor([label])))


class ToyDetector(nn.Module):
    """conv-bn-relu backbone + dropout + 1x1 head predicting one class and one box per image.

    :param nan_at_call: make ``loss_bbox`` NaN from this (1-based) call of ``loss`` on.
    :param nan_grad_at_call: from this (1-based) call on the losses stay finite but the
        gradients become NaN (the derivative of ``sqrt`` at 0, like an overflowing step).
    :param delay: seconds to sleep in each ``loss`` call (to kill a run mid-epoch).
    """

    def __init__(self, num_classes: int = 2, width: int = 4, nan_at_call: int = 0,
                 nan_grad_at_call: int = 0, delay: float = 0.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.backbone = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width),
                                      nn.ReLU())
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Conv2d(width, num_classes + 4, 1)
        self.nan_at_call = nan_at_call
        self.nan_grad_at_call = nan_grad_at_call
        self.delay = delay
        self.calls = 0

    def _forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W) -> (B, num_classes + 4)``."""
        return self.head(self.dropout(self.backbone(images))).mean(dim=(2, 3))

    def loss(self, batch: DetBatch) -> dict[str, torch.Tensor]:
        self.calls += 1
        time.sleep(self.delay)
        out = self._forward(batch.images)
        labels = torch.stack([s.gt.labels[0] for s in batch.samples])
        boxes = torch.stack([s.gt.boxes[0] for s in batch.samples]) / IMAGE_SIZE
        loss_bbox = (out[:, self.num_classes:].sigmoid() - boxes).abs().mean()
        if self.nan_at_call and self.calls >= self.nan_at_call:
            loss_bbox = loss_bbox * float("nan")
        if self.nan_grad_at_call and self.calls >= self.nan_grad_at_call:
            loss_bbox = loss_bbox + 0.0 * (out.sum() * 0.0).sqrt()
        MessageHub.get_current_instance().update_scalar(
            "train/num_pos", sum(len(s.gt) for s in batch.samples))
        return {"loss_cls": nn.functional.cross_entropy(out[:, :self.num_classes], labels),
                "loss_bbox": loss_bbox}

    def predict(self, batch: DetBatch) -> list[Instances]:
        out = self._forward(batch.images)
        scores, labels = out[:, :self.num_classes].softmax(-1).max(-1)
        boxes = out[:, self.num_classes:].sigmoid() * IMAGE_SIZE
        return [Instances(boxes[i:i + 1], labels[i:i + 1], scores[i:i + 1])
                for i in range(len(batch))]


class ToyMetric:
    """Mean IoU and accuracy of each image's prediction; gathered across ranks by img_id."""

    def __init__(self) -> None:
        self.dataset_meta: dict[str, Any] = {}
        self.results: dict[int, tuple[float, float]] = {}

    def reset(self) -> None:
        self.results = {}

    def process(self, samples: list[DetSample]) -> None:
        from torchvision.ops import box_iou

        for s in samples:
            iou = box_iou(s.pred.boxes[:1], s.gt.boxes[:1])[0, 0].item()
            self.results[s.img_id] = (iou, float(s.pred.labels[0] == s.gt.labels[0]))

    def evaluate(self) -> dict[str, float]:
        merged: dict[int, tuple[float, float]] = {}
        for part in dist.all_gather_object(self.results):
            merged.update(part)
        values = list(merged.values())
        return {"toy/iou": sum(v[0] for v in values) / len(values),
                "toy/acc": sum(v[1] for v in values) / len(values),
                "toy/num_images": float(len(values))}


class OtherDetector(ToyDetector):
    """A detector whose parameter names differ from :class:`ToyDetector`'s."""

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__(num_classes)
        self.extra = nn.Linear(2, 2)
        del self.head
        self.cls_head = nn.Conv2d(4, num_classes + 4, 1)


class RecordingVisBackend(BaseVisBackend):
    """Keeps every scalar record in memory (class-level, to inspect after a run)."""

    records: ClassVar[list[dict[str, float]]] = []

    def add_config(self, config: dict[str, Any]) -> None:
        pass

    def add_image(self, name: str, image: Any, step: int = 0) -> None:
        pass

    def add_scalars(self, scalars: dict[str, float], step: int = 0) -> None:
        RecordingVisBackend.records.append({**scalars, "step": step})


class ToyPlugin:
    """The test plugin object registering the toy components."""

    @impl
    def register_detectors(self, register: Register) -> None:
        register("ToyDetector", ToyDetector)
        register("OtherDetector", OtherDetector)

    @impl
    def register_datasets(self, register: Register) -> None:
        register("ToyDataset", ToyDataset)

    @impl
    def register_metrics(self, register: Register) -> None:
        register("ToyMetric", ToyMetric)

    @impl
    def register_vis_backends(self, register: Register) -> None:
        register("RecordingVisBackend", RecordingVisBackend)


def install_toy_plugin() -> None:
    """Make the process-wide plugin manager include :class:`ToyPlugin`."""
    manager = core.plugins.PluginManager().load(extra={"toy": ToyPlugin()})
    core.plugins.get_plugin_manager = functools.cache(lambda: manager)


def toy_config(**overrides: Any) -> dict[str, Any]:
    """A small complete training config over the toy components."""
    cfg: dict[str, Any] = {
        "seed": 3,
        "device": "cpu",
        "model": {"type": "ToyDetector"},
        "train_dataloader": {"batch_size": 4, "shuffle": True,
                             "dataset": {"type": "ToyDataset", "num_images": 16}},
        "val_dataloader": {"batch_size": 4, "dataset": {"type": "ToyDataset", "num_images": 8,
                                                         "augment": False}},
        "val_evaluator": {"type": "ToyMetric"},
        "optim": {"type": "SGD", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4},
        "param_schedulers": [
            {"type": "LinearWarmup", "start_factor": 0.1, "by_epoch": False, "end": 3},
            {"type": "MultiStep", "milestones": [1], "gamma": 0.5},
        ],
        "train": {"max_epochs": 2, "val_interval": 1},
        "default_hooks": {"logger": {"interval": 2}},
    }
    cfg.update(overrides)
    return cfg


def batch_of(samples: list[DetSample]) -> DetBatch:
    """Collate samples into a batch."""
    return collate(samples)


CLI = Path(__file__).parent / "toy_cli.py"


def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    """Write ``cfg`` as TOML."""
    import tomli_w

    path.write_text(tomli_w.dumps(cfg))
    return path


def cli_env() -> dict[str, str]:
    """Environment of CLI child processes (single-threaded torch: 2 shared cores)."""
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1"}


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python toy_cli.py ARGS`` to completion."""
    return subprocess.run([sys.executable, str(CLI), *args], capture_output=True, text=True,
                          timeout=timeout, env=cli_env())


def only_run_dir(root: Path) -> Path:
    """The single run directory under ``root``."""
    runs = [p for p in root.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """The model weights of a checkpoint file."""
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
