"""Our RT-DETR R50vd against ultralytics' ``rtdetr-resnet50.yaml`` on this CPU, each framework
in its own process.

Measures (the best, i.e. least disturbed, of the repeats after warm-up; ratio
ours / ultralytics), both in float32 with the same thread count, batch and input size (ours
in its config's memory format, channels-last, with the engine's CPU settings):

* ``train step``: forward with denoising queries, the set losses (Hungarian matching,
  varifocal, L1, GIoU on every decoder layer, the encoder's proposals and the denoising
  groups), backward and an AdamW step (lr 1e-5: the weights barely move, so every step does
  comparable work) on one seeded batch of random images with random boxes (the same tensors
  for both), 80 classes;
* ``inference batch``: the forward in eval mode with the test-time selection (the top 300
  query-class pairs, no NMS) of that batch.

The two models are the same encoder and decoder (the parity test
``plugins/detr/tests/weights_parity`` checks them within 1e-4) on different backbones:
ours is RT-DETR's ResNet-50-vd with the reference recipe's frozen stem and frozen BatchNorm
(``rtdetr_r50vd_6x_coco``), ultralytics' a plain ResNet-50 trained whole with ordinary
BatchNorm. The default input is 320 px, not the published 640: a training step of this
42 M-parameter model takes about 1 s per image at 320 px on a 2-core CPU and 640 px has four
times the pixels, while the decoder's cost does not depend on the input size (300 queries);
320 px keeps a run of both frameworks to about two minutes.

Threads: ultralytics sets ``torch.set_num_threads(1)`` when it selects a CPU device; the
worker sets ``--threads`` after building its model, ours the same count.

    python bench/bench_detr.py [--threads 2] [--imgsz 320] [--batch 2] [--repeats 5]
        [--warmup 2] [--rounds 2]

Run it where ultralytics is installed (the ``bench-yolo`` tox env, ``tox -e bench-yolo``); it
is never a dependency of plugdet.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from timing import best_seconds

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "plugins/detr/plugdet_detr/configs/rtdetr_r50vd_6x_coco.toml"
NUM_CLASSES = 80
LR = 1e-5


def ultralytics_environment(config_dir: Path) -> None:
    """Offline settings; ultralytics looks for Arial.ttf in its config dir."""
    os.environ["YOLO_OFFLINE"] = "true"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ["YOLO_VERBOSE"] = "false"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    import matplotlib

    font = Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"
    for folder in (config_dir, config_dir / "Ultralytics"):
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(font, folder / "Arial.ttf")


def ultralytics_speed(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from random_boxes import random_batch
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import RTDETRDetectionModel

    torch.manual_seed(0)
    model = RTDETRDetectionModel("rtdetr-resnet50.yaml", nc=NUM_CLASSES, verbose=False)
    model.nc, model.args = NUM_CLASSES, get_cfg()  # as its trainer sets them
    torch.set_num_threads(args.threads)
    images, targets = random_batch(args.batch, args.imgsz, NUM_CLASSES)
    size = float(args.imgsz)
    batch_idx, cls, bboxes = [], [], []
    for index, (boxes, labels) in enumerate(targets):
        xywh = torch.cat([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], 1)
        bboxes.append(xywh / size)
        cls.append(labels[:, None].float())
        batch_idx.append(torch.full((len(labels),), float(index)))
    batch = {"img": images, "batch_idx": torch.cat(batch_idx), "cls": torch.cat(cls),
             "bboxes": torch.cat(bboxes)}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss, _ = model.loss(batch)
        loss.sum().backward()
        optimizer.step()

    def infer() -> None:
        with torch.no_grad():
            model(images)

    model.train()
    train = best_seconds(step, args.warmup, args.repeats)
    model.eval()
    return {"train_step": train, "infer_batch": best_seconds(infer, args.warmup, args.repeats),
            "params": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "threads": torch.get_num_threads()}


def ours_speed(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from random_boxes import random_batch

    from core.engine.cpu_tuning import apply_cpu_settings
    from core.engine.full_config import load_full_config
    from core.plugins import get_registries
    from core.structures import DetBatch, DetSample, Instances

    apply_cpu_settings(flush_denormal=True)  # what every plugdet run does first
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    cfg = load_full_config(str(CONFIG), overrides=[f"model.head.num_classes={NUM_CLASSES}"])
    model = get_registries().build("detector", cfg["model"], path="model")
    images, targets = random_batch(args.batch, args.imgsz, NUM_CLASSES)
    shape = (args.imgsz, args.imgsz)
    samples = [DetSample(img_shape=shape, ori_shape=shape, pad_shape=shape,
                         gt=Instances(boxes, labels)) for boxes, labels in targets]
    batch = DetBatch(images, samples)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        losses = model.loss(batch)
        sum(v for key, v in losses.items() if key.startswith("loss")).backward()
        optimizer.step()

    def infer() -> None:
        with torch.no_grad():
            model.predict(batch)

    model.train()
    train = best_seconds(step, args.warmup, args.repeats)
    model.eval()
    return {"train_step": train, "infer_batch": best_seconds(infer, args.warmup, args.repeats),
            "params": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "threads": torch.get_num_threads()}


def run_worker(args: argparse.Namespace, side: str, scratch: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", "--side", side, "--threads",
               str(args.threads), "--imgsz", str(args.imgsz), "--batch", str(args.batch),
               "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--scratch",
               scratch]
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)
    line = next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line[len("RESULT "):])
    return result


def cpu() -> str:
    """The CPU model (lscpu's "Model name") and whether it has native bf16 / AMX."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        lscpu = ""
    name = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                 if line.startswith("Model name")), "unknown")
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    found = [flag for flag in ("avx512_bf16", "amx_bf16", "amx_tile") if flag in flags]
    return f"CPU {name}; flags: {', '.join(found) or 'no avx512_bf16 / amx'}"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternating rounds of the two processes (best kept)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=["ours", "ultralytics"], help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.side == "ultralytics":
            ultralytics_environment(Path(args.scratch) / "ultralytics_config")
            result = ultralytics_speed(args)
        else:
            result = ours_speed(args)
        print("RESULT " + json.dumps(result))
        return
    import torch

    print(f"RT-DETR R50, {args.imgsz}x{args.imgsz}, batch {args.batch}, float32, "
          f"{args.threads} threads each, best of {args.repeats} after {args.warmup} warm-up, "
          f"{args.rounds} rounds; torch {torch.__version__}")
    print(cpu())
    print(f"before: {load()}")
    with tempfile.TemporaryDirectory(prefix="bench_detr_") as scratch:
        best: dict[str, dict[str, Any]] = {}
        for _ in range(args.rounds):
            for side in ("ours", "ultralytics"):
                result = run_worker(args, side, scratch)
                kept = best.setdefault(side, result)
                for key in ("train_step", "infer_batch"):
                    kept[key] = min(kept[key], result[key])
    names = {"ours": "ours (R50vd)", "ultralytics": "ultralytics (R50)"}
    for side, result in best.items():
        print(f"{names[side]:18s} params {result['params'] / 1e6:.2f} M "
              f"({result['trainable'] / 1e6:.2f} M trainable)  threads "
              f"{result['threads']}  train step {result['train_step']:.3f} s  "
              f"inference batch {result['infer_batch']:.3f} s")
    for key, name in (("train_step", "train step"), ("infer_batch", "inference batch")):
        ratio = best["ours"][key] / best["ultralytics"][key]
        print(f"ratio {name} ours/ultralytics: {ratio:.3f}")
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
