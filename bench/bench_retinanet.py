"""Speed of our RetinaNet against torchvision's on the same CPU input (2 threads).

Cases (each: best (least) seconds per training step and per inference batch, ratio ours/theirs):

* ``r50``: RetinaNet-R50-FPN, 512x512, batch 2, vs ``retinanet_resnet50_fpn``;
* ``r18``: RetinaNet-R18-FPN, 320x320, batch 4, vs torchvision's RetinaNet on
  ``resnet_fpn_backbone("resnet18", returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7)``.

Variants: ``torchvision``; ``ours`` (same memory layout, so the same arithmetic); ``ours
channels_last`` (the detector's ``channels_last = true`` option).
All have the same architecture and weights (copied from torchvision's), trainable
BatchNorm, and get the same normalised tensor: torchvision's resize/normalise transform is
skipped (``TorchvisionRunner``) because our data pipeline does that work before the model.
Head weights get a wider random spread so that inference keeps many candidates, as a trained
model does (the post-processing then does its full work). A training step is forward, loss,
backward and an SGD step.

``--profile`` adds, per case, the time of the loss computed from given head outputs, the time
of one training step spent in convolutions (forward and backward, from ``torch.profiler``) and
the floor: the ratio ours/theirs that would remain
with the same convolutions if every other operation of ours took no time at all. Faster
Python, assignment or loss code cannot go below it.

    python bench/bench_retinanet.py [--case r50 r18] [--repeats 5] [--warmup 2] [--profile]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial

import torch
from plugdet_retinanet.torchvision_compat import (
    TV_FPN_CHANNELS,
    TorchvisionRunner,
    load_torchvision_weights,
    torchvision_like_config,
)
from random_boxes import random_gt
from timing import interleaved_best
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torchvision.models.detection import RetinaNet as TVRetinaNet
from torchvision.models.detection import retinanet_resnet50_fpn
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from core.plugins import get_registries
from core.structures import DetBatch, DetSample, Instances

NUM_THREADS = 2
NUM_CLASSES = 80
HEAD_STD = 0.01
SGD_LR = 1e-4  # small: weights barely move, so every step does comparable work
#: Profiler events that are convolution arithmetic (self time, forward and backward).
CONV_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::thnn_conv2d")
CASES = {
    # name: (depth, image size, batch size, target ratio ours/theirs)
    "r50": (50, 512, 2, 1.0),
    "r18": (18, 320, 4, 0.8),
}


def torchvision_model(depth: int) -> TVRetinaNet:
    if depth == 50:
        return retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=NUM_CLASSES)
    backbone = resnet_fpn_backbone(
        backbone_name=f"resnet{depth}",
        weights=None,
        norm_layer=nn.BatchNorm2d,
        trainable_layers=5,
        returned_layers=[2, 3, 4],
        extra_blocks=LastLevelP6P7(TV_FPN_CHANNELS, TV_FPN_CHANNELS),
    )
    return TVRetinaNet(backbone, num_classes=NUM_CLASSES)


def spread_head_weights(model: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.head.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.copy_(
                    torch.randn(module.weight.shape, generator=generator) * HEAD_STD
                )
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * HEAD_STD)


def random_targets(batch: int, size: int, generator: torch.Generator) -> list[Instances]:
    return [Instances(*random_gt(size, NUM_CLASSES, generator)) for _ in range(batch)]



def train_step(
    optimizer: torch.optim.Optimizer, loss_fn: Callable[[], dict[str, torch.Tensor]]
) -> None:
    """Forward with loss, backward and one SGD step."""
    optimizer.zero_grad(set_to_none=True)
    # torchvision names its terms freely; ours add logged scalars (num_pos) without gradients
    total = sum(value for value in loss_fn().values() if value.requires_grad)
    total.backward()
    optimizer.step()


def convolution_share(step: Callable[[], None]) -> tuple[float, float]:
    """``(seconds in convolutions, seconds in total)`` of one profiled call of ``step``
    (CPU self times, so nothing is counted twice)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = prof.key_averages()
    conv = sum(e.self_cpu_time_total for e in events if e.key in CONV_OPS)
    total = sum(e.self_cpu_time_total for e in events)
    return conv / 1e6, total / 1e6


def run_case(
    name: str, warmup: int, repeats: int, with_profile: bool = False
) -> dict[str, dict[str, float]]:
    """Seconds per training step and per inference batch of each model variant; with
    ``with_profile`` also ``"train_conv"`` and ``"train_profiled"`` (one profiled step) and
    ``"loss_only"`` (the loss of a batch from given head outputs, forward only)."""
    depth, size, batch, _ = CASES[name]
    torch.manual_seed(0)
    tv_model = torchvision_model(depth)
    spread_head_weights(tv_model, seed=1)
    models: dict[str, nn.Module] = {}
    for variant, channels_last in (("ours", False), ("ours_cl", True)):
        cfg = {**torchvision_like_config(NUM_CLASSES, depth=depth), "channels_last": channels_last}
        models[variant] = get_registries().build("detector", cfg, path="model")
        load_torchvision_weights(models[variant], tv_model)
    models["torchvision"] = tv_model
    runner = TorchvisionRunner(tv_model)

    generator = torch.Generator().manual_seed(2)
    images = torch.randn(batch, 3, size, size, generator=generator)
    gts = random_targets(batch, size, generator)
    samples = [
        DetSample(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size), gt=gt)
        for gt in gts
    ]
    our_batch = DetBatch(images, samples)
    tv_targets = [{"boxes": gt.boxes, "labels": gt.labels} for gt in gts]
    image_sizes = [(size, size)] * batch

    def loss_fn(variant: str) -> Callable[[], dict[str, torch.Tensor]]:
        if variant == "torchvision":
            return lambda: runner.loss(images, tv_targets)
        return lambda: models[variant].loss(our_batch)

    def predict_fn(variant: str) -> Callable[[], object]:
        if variant == "torchvision":
            return lambda: runner.predict(images, image_sizes)
        return lambda: models[variant].predict(our_batch)

    optimizers = {
        v: torch.optim.SGD(m.parameters(), lr=SGD_LR, momentum=0.9) for v, m in models.items()
    }
    for model in models.values():
        model.train()
    steps = {v: partial(train_step, optimizers[v], loss_fn(v)) for v in models}
    results = {"train": interleaved_best(steps, warmup, repeats)}
    if with_profile:
        shares = {v: convolution_share(step) for v, step in steps.items()}
        results["train_conv"] = {v: conv for v, (conv, _) in shares.items()}
        results["train_profiled"] = {v: total for v, (_, total) in shares.items()}
        tv_feats = runner.features(images)
        tv_heads = tv_model.head(tv_feats)
        our_heads = models["ours"].head(models["ours"].extract_feat(images))
        results["loss_only"] = interleaved_best(
            {
                "torchvision": lambda: tv_model.compute_loss(
                    tv_targets, tv_heads, runner.anchors(images, tv_feats)
                ),
                "ours": lambda: models["ours"].head.loss_by_feat(*our_heads, samples),
            },
            warmup,
            repeats,
        )
    for model in models.values():
        model.eval()
    with torch.no_grad():
        results["infer"] = interleaved_best({v: predict_fn(v) for v in models}, warmup, repeats)
    return results


def print_convolution_floor(results: dict[str, dict[str, float]]) -> None:
    """The convolution share of a profiled training step of each variant, and the floor: the
    ratio ours/theirs if our convolutions took as long as torchvision's and everything else
    took no time (torchvision's convolution share of its own step)."""
    for variant, conv in results["train_conv"].items():
        total = results["train_profiled"][variant]
        print(
            f"  profiled train step, {variant:<11}: convolutions {conv:.3f} s of {total:.3f} s "
            f"({100 * conv / total:.0f}%)"
        )
    theirs = results["train_conv"]["torchvision"] / results["train_profiled"]["torchvision"]
    print(f"  floor ratio for a train step with the same convolutions: {theirs:.2f}")
    loss = results["loss_only"]
    print(
        f"  loss from head outputs (anchors, assign, targets, losses; forward): torchvision "
        f"{loss['torchvision']:.3f} s  ours {loss['ours']:.3f} s "
        f"(ratio {loss['ours'] / loss['torchvision']:.2f})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--profile", action="store_true", help="also profile one training step per variant"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(NUM_THREADS)
    print(
        f"torch {torch.__version__}, {NUM_THREADS} threads, best of {args.repeats} "
        f"after {args.warmup} warm-up runs"
    )
    for name in args.case:
        results = run_case(name, args.warmup, args.repeats, args.profile)
        depth, size, batch, target = CASES[name]
        print(
            f"[{name}] RetinaNet-R{depth}-FPN {size}x{size} batch {batch} (target ratio "
            f"<= {target})"
        )
        for phase in ("train", "infer"):
            seconds = results[phase]
            theirs = seconds["torchvision"]
            print(
                f"  {phase:<5}  torchvision {theirs:.3f} s  ours {seconds['ours']:.3f} s "
                f"(ratio {seconds['ours'] / theirs:.2f})  ours channels_last "
                f"{seconds['ours_cl']:.3f} s (ratio {seconds['ours_cl'] / theirs:.2f})"
            )
        if args.profile:
            print_convolution_floor(results)


if __name__ == "__main__":
    main()
