"""What the fused inference convolutions (``core.api.conv_forward``) save, in one process.

Builds our RetinaNet (torchvision's layout, as ``bench_retinanet.py`` does) and Faster R-CNN
(torchvision's layout, random weights) in float32 channels-last with the engine's CPU settings,
then times ``model.predict`` on the same batch with the fused path on and off, in turn (off:
each conv and ReLU as separate PyTorch calls, the weight reordered on every call), and checks
that both give the same head outputs.

    python bench/bench_fused_conv.py [--case r18 r50 frcnn] [--repeats 5] [--warmup 2]
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import torch
from bench_retinanet import CASES, NUM_CLASSES, spread_head_weights, torchvision_model
from plugdet_faster_rcnn.torchvision_compat import torchvision_like_config as frcnn_config
from plugdet_retinanet.torchvision_compat import load_torchvision_weights, torchvision_like_config
from timing import cpu_model, interleaved_best
from torch import nn

import core.models.inference_conv as inference_conv
from core.engine.cpu_tuning import apply_cpu_settings
from core.plugins import get_registries
from core.structures import DetBatch, DetSample

FRCNN_CASE = (50, 512, 2)


def build(case: str) -> tuple[nn.Module, int, int]:
    """``(model in eval mode, image size, batch size)``."""
    if case == "frcnn":
        _, size, batch = FRCNN_CASE
        torch.manual_seed(0)
        model = get_registries().build("detector", frcnn_config(NUM_CLASSES), path="model")
        return model.eval(), size, batch
    depth, size, batch = CASES[case]
    torch.manual_seed(0)
    reference = torchvision_model(depth)
    spread_head_weights(reference, seed=1)
    model = get_registries().build(
        "detector", torchvision_like_config(NUM_CLASSES, depth=depth), path="model")
    load_torchvision_weights(model, reference)
    return model.eval(), size, batch


def switched(fn: Callable[[], object], fused: bool) -> Callable[[], object]:
    """``fn`` run with ``conv_forward``'s fused path available or not."""
    def run() -> object:
        saved = inference_conv._FUSED_AVAILABLE
        inference_conv._FUSED_AVAILABLE = saved and fused
        try:
            with torch.no_grad():
                return fn()
        finally:
            inference_conv._FUSED_AVAILABLE = saved
    return run


def measure_case(case: str, warmup: int, repeats: int) -> str:
    """The line of one case: predict seconds fused and plain, their ratio, and the largest
    difference between the two paths' head outputs."""
    model, size, batch = build(case)
    images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(2))
    samples = [DetSample(img_shape=(size, size), ori_shape=(size, size),
                         pad_shape=(size, size)) for _ in range(batch)]
    data = DetBatch(images, samples)
    head = model.rpn_head if case == "frcnn" else model.head
    feats = switched(lambda: model.extract_feat(images), True)()
    outputs = [switched(lambda: head(feats), fused)() for fused in (True, False)]
    difference = max((a - b).abs().max().item()
                     for fa, fb in zip(*outputs, strict=True) for a, b in zip(fa, fb, strict=True))
    best = interleaved_best({"fused": switched(lambda: model.predict(data), True),
                             "plain": switched(lambda: model.predict(data), False)},
                            warmup, repeats)
    return (f"[{case}] predict batch {batch} at {size}px: fused {best['fused']:.4f} s  "
            f"plain {best['plain']:.4f} s  ratio {best['fused'] / best['plain']:.3f}  "
            f"largest head-output difference {difference:.2e}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", nargs="+", default=["r18", "r50", "frcnn"],
                        choices=[*CASES, "frcnn"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    settings = apply_cpu_settings(flush_denormal=True)
    torch.set_num_threads(2)
    print(f"fused inference convolutions on/off; CPU {cpu_model()}; {settings}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; 2 threads")
    for case in args.case:
        print(measure_case(case, args.warmup, args.repeats))


if __name__ == "__main__":
    main()
