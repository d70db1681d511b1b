"""Training-pipeline throughput on the raccoon images: plugdet transforms vs the same
operations written directly with torchvision transforms v2.

    python bench/bench_pipeline.py [--data ../shared/data/raccoon] [--rounds 3]
                                   [--without-photometric]

Both sides read and decode each JPEG, resize (long side 512, aspect kept), flip with
probability 0.5, apply brightness/contrast/saturation/hue changes each with probability 0.5,
convert to float32, normalize and pad to a multiple of 32, moving the boxes along. They run
alternately in one process, single-threaded; the best round of each counts. Prints images/s
and the ratio ours / torchvision (>= 1.0 means ours is not slower). Ours computes the four
colour operations in one float pass instead of converting the image for each.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2 as v2
import torchvision.transforms.v2.functional as TF
from torchvision import tv_tensors
from torchvision.io import ImageReadMode, decode_image, read_file

from core.data.datasets.voc import VocDataset
from core.data.transforms.geometric import Pad, RandomFlip, Resize
from core.data.transforms.loading import LoadImage
from core.data.transforms.photometric import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Normalize,
    PhotoMetricDistortion,
)

LONG_SIDE = 512
SIZE_DIVISOR = 32


def ours(data: Path, photometric: bool) -> VocDataset:
    """The raccoon train split with plugdet's training pipeline."""
    return VocDataset(
        data_root=str(data),
        ann_dir="annotations",
        img_dir="images",
        split_file="train.txt",
        classes=["raccoon"],
        pipeline=[
            LoadImage(),
            Resize(scale=(LONG_SIDE, LONG_SIDE), keep_ratio=True),
            RandomFlip(prob=0.5),
            *([PhotoMetricDistortion()] if photometric else []),
            Normalize(),
            Pad(size_divisor=SIZE_DIVISOR),
        ],
    )


def pad_to_divisor(image: tv_tensors.Image, boxes: tv_tensors.BoundingBoxes):
    h, w = image.shape[-2:]
    padding = [
        0,
        0,
        math.ceil(w / SIZE_DIVISOR) * SIZE_DIVISOR - w,
        math.ceil(h / SIZE_DIVISOR) * SIZE_DIVISOR - h,
    ]
    return TF.pad(image, padding), TF.pad(boxes, padding)


def torchvision_pipeline(photometric: bool) -> v2.Compose:
    """The same operations with torchvision transforms v2."""
    distortions = [
        v2.ColorJitter(brightness=(0.875, 1.125)),
        v2.ColorJitter(contrast=(0.5, 1.5)),
        v2.ColorJitter(saturation=(0.5, 1.5)),
        v2.ColorJitter(hue=(-0.05, 0.05)),
    ]
    return v2.Compose([
        v2.Resize(size=None, max_size=LONG_SIDE, antialias=True),
        v2.RandomHorizontalFlip(p=0.5),
        *([v2.RandomApply([d], p=0.5) for d in distortions] if photometric else []),
        v2.ToDtype(torch.float32, scale=False),
        v2.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD)),
    ])  # fmt: skip


def run_ours(dataset: VocDataset, epoch: int) -> int:
    for index in range(len(dataset)):
        sample = dataset[(index, epoch * 100_003 + index)]
        assert sample.image.dtype == torch.float32
    return len(dataset)


def run_torchvision(dataset: VocDataset, pipeline: v2.Compose) -> int:
    for record in dataset.records:
        image = tv_tensors.Image(decode_image(read_file(record.img_path), ImageReadMode.RGB))
        boxes = tv_tensors.BoundingBoxes(
            record.gt.boxes, format="XYXY", canvas_size=(record.height, record.width)
        )
        image, boxes = pipeline(image, boxes)
        image, boxes = pad_to_divisor(image, boxes)
        assert image.dtype == torch.float32
    return len(dataset.records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/raccoon"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--without-photometric", action="store_true", help="leave out the colour changes"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    np.random.seed(0)
    photometric = not args.without_photometric
    dataset = ours(args.data, photometric)
    pipeline = torchvision_pipeline(photometric)
    run_ours(dataset, 0)  # warm up (file cache, lazy initialisation)
    run_torchvision(dataset, pipeline)
    best = {"ours": 0.0, "torchvision": 0.0}
    for round_index in range(args.rounds):
        start = time.perf_counter()
        count = run_ours(dataset, round_index + 1)
        best["ours"] = max(best["ours"], count / (time.perf_counter() - start))
        start = time.perf_counter()
        count = run_torchvision(dataset, pipeline)
        best["torchvision"] = max(best["torchvision"], count / (time.perf_counter() - start))
        print(
            f"round {round_index + 1}: ours {best['ours']:.1f} img/s (best so far), "
            f"torchvision v2 {best['torchvision']:.1f} img/s (best so far)"
        )
    print(
        f"images: {len(dataset)} raccoon train images, {args.rounds} rounds, 1 thread, "
        f"photometric distortion: {'yes' if photometric else 'no'}"
    )
    print(f"ours:           {best['ours']:.1f} images/s")
    print(f"torchvision v2: {best['torchvision']:.1f} images/s")
    print(f"ratio ours / torchvision v2: {best['ours'] / best['torchvision']:.2f}")


if __name__ == "__main__":
    main()
