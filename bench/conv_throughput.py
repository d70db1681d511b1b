"""Convolution time and throughput shared by the benchmarks: the seconds a profiled call
spends in convolutions, the arithmetic of a model's forward convolutions, and this CPU's
ceiling for them (a wide 3x3 convolution alone), to show how far from the hardware each
framework's convolutions run."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

#: Profiler events that are convolution arithmetic (self time, forward and backward).
CONV_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::thnn_conv2d",
            "aten::_convolution", "aten::convolution")
#: The ceiling's convolution: (batch, channels, size) of a 3x3, stride 1, channels-last one
#: (a RetinaNet head convolution at P3 of a 320 px image).
CEILING_SHAPE = (4, 256, 40)


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


def conv_ceiling_gflops(repeats: int = 40, warmup: int = 5) -> float:
    """GFLOP/s of a 3x3 convolution of :data:`CEILING_SHAPE` in channels-last float32 under
    no_grad (the best of ``repeats`` after ``warmup`` calls): as fast as this CPU runs
    convolutions with this process's threads."""
    batch, channels, size = CEILING_SHAPE
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, size, size, generator=generator)
    x = x.contiguous(memory_format=torch.channels_last)
    conv = nn.Conv2d(channels, channels, 3, padding=1).to(memory_format=torch.channels_last)
    flops = 2.0 * batch * channels * size * size * channels * 9
    best = float("inf")
    with torch.no_grad():
        for run in range(warmup + repeats):
            start = time.perf_counter()
            conv(x)
            if run >= warmup:
                best = min(best, time.perf_counter() - start)
    return flops / best / 1e9
