"""Convolution time and throughput shared by the benchmarks: the seconds a profiled call
spends in convolutions, the arithmetic of a model's forward convolutions, and this CPU's
ceiling for them (a wide 3x3 convolution alone), to show how far from the hardware each
framework's convolutions run."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from timing import best_seconds
from torch import nn
from torch.profiler import ProfilerActivity, profile

#: Profiler events that are convolution arithmetic (self time, forward and backward).
CONV_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::thnn_conv2d",
            "aten::_convolution", "aten::convolution")
#: The ceiling's convolution: (batch, channels, size) of a 3x3, stride 1, channels-last one
#: (a RetinaNet head convolution at P3 of a 320 px image).
CEILING_SHAPE = (4, 256, 40)
#: Its arithmetic (2 per multiply-add), in GFLOP.
CEILING_GFLOP = 2 * CEILING_SHAPE[0] * CEILING_SHAPE[1] ** 2 * 9 * CEILING_SHAPE[2] ** 2 / 1e9


def conv_seconds(fn: Callable[[], object]) -> tuple[float, float]:
    """``(seconds in convolutions, seconds in total)`` of one profiled call of ``fn`` (CPU self
    times, nothing counted twice; the profiler slows a call down: read the share)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    conv = sum(e.self_cpu_time_total for e in events if e.key in CONV_OPS)
    return conv / 1e6, sum(e.self_cpu_time_total for e in events) / 1e6


def forward_conv_flops(model: nn.Module, fn: Callable[[], object]) -> float:
    """Floating-point operations (2 per multiply-add) of the ``nn.Conv2d`` forwards of ``model``
    in one call of ``fn``: ``2 * output elements * in_channels / groups * kh * kw`` each."""
    flops = 0.0

    def count(conv: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        nonlocal flops
        kh, kw = conv.kernel_size
        flops += 2.0 * output.numel() * conv.in_channels / conv.groups * kh * kw

    handles = [m.register_forward_hook(count) for m in model.modules()
               if isinstance(m, nn.Conv2d)]
    try:
        fn()
    finally:
        for handle in handles:
            handle.remove()
    return flops


def ceiling_seconds(repeats: int = 40, warmup: int = 5) -> float:
    """Best seconds of the 3x3 convolution of :data:`CEILING_SHAPE` (channels-last, under
    no_grad, in the caller's precision) over ``repeats`` calls after ``warmup``: as fast as
    this CPU runs convolutions with this process's threads (:data:`CEILING_GFLOP` per call)."""
    batch, channels, size = CEILING_SHAPE
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, size, size, generator=generator)
    x = x.contiguous(memory_format=torch.channels_last)
    conv = nn.Conv2d(channels, channels, 3, padding=1).to(memory_format=torch.channels_last)
    with torch.no_grad():
        return best_seconds(lambda: conv(x), warmup, repeats)


def inference_convolutions(model: nn.Module, predict: Callable[[], object],
                           precision: Callable[[], AbstractContextManager[object]],
                           ) -> dict[str, float]:
    """Seconds: ``infer_conv`` and ``infer_profiled`` (in convolutions and in total, the least
    of three profiled calls of ``predict``) and ``ceiling`` (:func:`ceiling_seconds` within
    ``precision()``); ``infer_gflop``: the forward convolutions' arithmetic of a call."""
    conv, total = min(conv_seconds(predict) for _ in range(3))
    with precision():
        ceiling = ceiling_seconds()
    return {"infer_conv": conv, "infer_profiled": total, "ceiling": ceiling,
            "infer_gflop": forward_conv_flops(model, predict) / 1e9}


def print_inference_throughput(best: dict[str, dict[str, Any]], peer: str) -> None:
    """Each side's inference convolutions (``best[side]["seconds"]`` from
    :func:`inference_convolutions`): their share of a profiled batch and their speed against
    this CPU's ceiling; then the floor: ours / ``peer``'s if ours took the peer's convolution
    time and nothing else. With both sides near the ceiling, only less arithmetic could make
    either faster."""
    for result in best.values():
        seconds = result["seconds"]
        conv, total = seconds["infer_conv"], seconds["infer_profiled"]
        gflop = seconds["infer_gflop"]
        rate, ceiling = gflop / conv, CEILING_GFLOP / seconds["ceiling"]
        print(f"  profiled inference, {result['label']}: convolutions {conv:.3f} s of "
              f"{total:.3f} s ({100 * conv / total:.0f}%), {gflop:.1f} GFLOP at {rate:.0f} "
              f"GFLOP/s = {100 * rate / ceiling:.0f}% of a 256-channel 3x3 convolution alone "
              f"({ceiling:.0f} GFLOP/s)")
    theirs = best[peer]["seconds"]
    print(f"  floor ratio for inference with the same convolutions: "
          f"{theirs['infer_conv'] / theirs['infer_profiled']:.2f}")
