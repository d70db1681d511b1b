"""Which precision and memory format each detector family trains and predicts fastest with
on this CPU: the measure behind the shipped configs' defaults (``amp = "auto"``, the
detectors' ``channels_last``).

Per shipped demo or raccoon config (one per family), on its own first training batch (its
data pipeline, batch size and image size; the shapes set is generated on first use), the
best (least) seconds of a training step (forward, loss, backward, SGD step) and of the
inference of that batch, for float32 and bf16 autocast (only where the CPU computes bf16
natively: what ``amp = "auto"`` picks), each in the contiguous (NCHW) and the channels-last
memory format. The process applies the engine's CPU settings
(:mod:`core.engine.cpu_tuning`), as every run does. Printed per config: the four (or two)
times, each as a ratio to float32 NCHW, and the fastest setting.

    python bench/bench_defaults.py [--config PATH ...] [--repeats 5] [--warmup 2]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import torch
from timing import cpu_model, interleaved_best

from core.engine.cpu_tuning import apply_cpu_settings
from core.engine.full_config import load_full_config
from core.engine.run_config import cpu_has_native_bf16
from core.plugins import get_registries
from core.structures import DetBatch

REPO = Path(__file__).resolve().parent.parent
NUM_THREADS = 2
SGD_LR = 1e-4  # small: weights barely move, so every step does comparable work
CONFIGS = [
    "plugins/retinanet/configs/retinanet_tinynet_fpn_demo_shapes.toml",
    "plugins/retinanet/configs/retinanet_tinynet_fpn_atss_demo_shapes.toml",
    "plugins/faster_rcnn/configs/faster_rcnn_tinynet_fpn_demo_shapes.toml",
    "plugins/faster_rcnn/configs/mask_rcnn_tinynet_fpn_demo_shapes.toml",
    "plugins/yolo/configs/yolov5_n_demo_shapes.toml",
    "plugins/yolo/configs/yolov8_n_demo_shapes.toml",
    "plugins/yolo/configs/yolox_tiny_demo_shapes.toml",
    "plugins/yolo/configs/rtmdet_tiny_demo_shapes.toml",
    "plugins/yolo/configs/yolov8_n_seg_demo_shapes.toml",
    "plugins/detr/configs/rtdetr_r18vd_demo_shapes.toml",
    "plugins/retinanet/configs/retinanet_tinynet_fpn_scratch_raccoon.toml",
    "plugins/yolo/configs/yolov8_n_scratch_raccoon.toml",
]


def first_batch(config: str) -> tuple[DetBatch, dict[str, Any]]:
    """The config's first training batch and the config itself (classes counted from data)."""
    from core.data.loader import build_dataloader

    cfg = load_full_config(str(REPO / config), counts_from_data=True)
    table = {**cfg["train_dataloader"], "num_workers": 0}
    loader = build_dataloader(table, path="train_dataloader", seed=0)
    return next(iter(loader)), cfg


def measure(config: str, warmup: int, repeats: int) -> dict[str, tuple[float, float]]:
    """``{setting: (train step seconds, inference seconds)}``."""
    batch, cfg = first_batch(config)
    settings = [(False, False), (False, True)]
    if cpu_has_native_bf16():
        settings += [(True, False), (True, True)]
    steps, infers = {}, {}
    for amp, channels_last in settings:
        torch.manual_seed(0)
        model = get_registries().build(
            "detector", {**cfg["model"], "channels_last": channels_last}, path="model")
        optimizer = torch.optim.SGD(model.parameters(), lr=SGD_LR, momentum=0.9)
        name = ("bf16" if amp else "fp32") + (" CL" if channels_last else " NCHW")

        def step(model=model, optimizer=optimizer, amp=amp) -> None:
            model.train()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                losses = model.loss(batch)
            sum(v for k, v in losses.items() if k.startswith("loss")).backward()
            optimizer.step()

        def infer(model=model, amp=amp) -> None:
            model.eval()
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                model.predict(batch)

        steps[name], infers[name] = step, infer
    train = interleaved_best(steps, warmup, repeats)
    infer = interleaved_best(infers, warmup, repeats)
    return {name: (train[name], infer[name]) for name in steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", nargs="+", default=CONFIGS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    print(f"CPU settings: {apply_cpu_settings(flush_denormal=True)}")
    torch.set_num_threads(NUM_THREADS)
    one, five, _ = os.getloadavg()
    print(f"{cpu_model()}, native bf16: {cpu_has_native_bf16()}, {NUM_THREADS} threads, "
          f"load average {one:.2f} {five:.2f}")
    for config in args.config:
        times = measure(config, args.warmup, args.repeats)
        base_train, base_infer = times["fp32 NCHW"]
        print(Path(config).stem)
        for name, (train, infer) in times.items():
            print(f"  {name:10s} train step {train:.4f} s ({train / base_train:.2f})  "
                  f"inference {infer:.4f} s ({infer / base_infer:.2f})")
        fastest_train = min(times, key=lambda n: times[n][0])
        fastest_infer = min(times, key=lambda n: times[n][1])
        print(f"  fastest: train {fastest_train}, inference {fastest_infer}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
