"""Speed of our RetinaNet against torchvision's on the same CPU input, each framework in its
own process (2 threads each).

Cases (each: best (least) seconds per training step and per inference batch, ratio
ours/theirs against the target 0.9):

* ``r50``: RetinaNet-R50-FPN, 512x512, batch 2, vs ``retinanet_resnet50_fpn``;
* ``r18``: RetinaNet-R18-FPN, 320x320, batch 4, vs torchvision's RetinaNet on
  ``resnet_fpn_backbone("resnet18", returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7)``.

Processes (:mod:`bench_process`): per case, ``--rounds`` alternating worker processes of each
side; ours runs with plugdet's default settings for RetinaNet (float32, ``channels_last =
true``, the engine's CPU settings applied first in its process), torchvision as its users run
it (float32, no process settings). ``--amp`` (ours under bf16 autocast on a CPU with native
bf16), ``--ours-contiguous`` (ours in NCHW) and ``--no-cpu-settings`` show the effect of each.
Both sides have the same architecture and weights (each process builds torchvision's model
from the same seed; ours copies its weights), trainable BatchNorm, and get the same normalised
tensor: torchvision's resize/normalise transform is skipped (``TorchvisionRunner``) because our
data pipeline does that work before the model. Head weights get a wider random spread so that
inference keeps many candidates, as a trained model does (the post-processing then does its
full work). A training step is forward, loss, backward and an SGD step.

``--profile`` adds, per case, the time of the loss computed from given head outputs (ours:
decoding, assignment and losses in float32, as the engine runs them), the time of one training
step spent in convolutions (forward and backward, from ``torch.profiler``) and the floor: the
ratio ours/theirs that would remain with the same convolutions if every other operation of
ours took no time at all. Faster Python, assignment or loss code cannot go below it. For
inference it adds the same share and floor, and each side's convolution speed (their forward
arithmetic over their time, GFLOP/s) against this CPU's ceiling: a 256-channel 3x3
convolution alone (:mod:`conv_throughput`). Each profiled number is the least over the
rounds.

    python bench/bench_retinanet.py [--case r50 r18] [--repeats 5] [--warmup 2] [--profile]
        [--rounds 2] [--amp] [--ours-contiguous] [--no-cpu-settings]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from bench_process import (
    SIDES,
    add_arguments,
    autocast_dtype,
    best_of_rounds,
    finish_worker,
    load_average,
    precision,
    print_header,
    print_sides,
    ratio_line,
    shared_flags,
    start_worker,
)
from conv_throughput import conv_seconds, inference_convolutions, print_inference_throughput
from plugdet_retinanet.torchvision_compat import (
    TV_FPN_CHANNELS,
    TorchvisionRunner,
    load_torchvision_weights,
    torchvision_like_config,
)
from random_boxes import random_gt
from timing import best_seconds
from torch import nn
from torchvision.models.detection import RetinaNet as TVRetinaNet
from torchvision.models.detection import retinanet_resnet50_fpn
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from core.plugins import get_registries
from core.structures import DetBatch, DetSample, Instances

NUM_CLASSES = 80
HEAD_STD = 0.01
SGD_LR = 1e-4  # small: weights barely move, so every step does comparable work
CASES = {
    # name: (depth, image size, batch size)
    "r50": (50, 512, 2),
    "r18": (18, 320, 4),
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


def measure_case(args: argparse.Namespace, name: str, dtype: torch.dtype | None
                 ) -> dict[str, float]:
    """Seconds per training step (``"train"``) and per inference batch (``"infer"``) of case
    ``name`` on this worker's side (ours under autocast to ``dtype`` unless ``None``); with
    ``--profile`` also ``"train_conv"`` and ``"train_profiled"`` (one profiled step) and
    ``"loss_only"`` (the loss of a batch from given head outputs, forward only)."""
    depth, size, batch = CASES[name]
    torch.manual_seed(0)
    tv_model = torchvision_model(depth)
    spread_head_weights(tv_model, seed=1)
    model: nn.Module = tv_model
    if args.side == "ours":
        cfg = {**torchvision_like_config(NUM_CLASSES, depth=depth),
               "channels_last": not args.ours_contiguous}
        model = get_registries().build("detector", cfg, path="model")
        load_torchvision_weights(model, tv_model)
        del tv_model
    runner = TorchvisionRunner(model)

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

    def loss_fn() -> dict[str, torch.Tensor]:
        if args.side == "torchvision":
            return runner.loss(images, tv_targets)
        with precision(dtype):
            return model.loss(our_batch)

    def predict_fn() -> object:
        if args.side == "torchvision":
            return runner.predict(images, image_sizes)
        with precision(dtype):
            return model.predict(our_batch)

    optimizer = torch.optim.SGD(model.parameters(), lr=SGD_LR, momentum=0.9)
    model.train()
    step = partial(train_step, optimizer, loss_fn)
    seconds = {"train": best_seconds(step, args.warmup, args.repeats)}
    if args.profile:
        seconds["train_conv"], seconds["train_profiled"] = conv_seconds(step)
        seconds["loss_only"] = loss_only_seconds(args, model, images, samples, tv_targets, dtype)
    model.eval()
    with torch.no_grad():
        seconds["infer"] = best_seconds(predict_fn, args.warmup, args.repeats)
        if args.profile:
            seconds.update(inference_convolutions(model, predict_fn, partial(precision, dtype)))
    return seconds


def loss_only_seconds(args: argparse.Namespace, model: nn.Module, images: torch.Tensor,
                      samples: list[DetSample], tv_targets: list[dict[str, torch.Tensor]],
                      dtype: torch.dtype | None) -> float:
    """Best seconds of the loss of a batch from given head outputs (anchors, assignment,
    targets, losses; forward only); ours from float32 outputs with autocast off, as its
    ``loss`` computes it."""
    if args.side == "torchvision":
        runner = TorchvisionRunner(model)
        feats = runner.features(images)
        heads = model.head(feats)
        anchors = runner.anchors(images, feats)
        return best_seconds(lambda: model.compute_loss(tv_targets, heads, anchors),
                            args.warmup, args.repeats)
    with precision(dtype):
        feats = model.extract_feat(images)
        with model.head.float32_outputs(feats) as outputs:
            return best_seconds(lambda: model.head.loss_by_feat(*outputs, samples),
                                args.warmup, args.repeats)


def print_convolution_floor(best: dict[str, dict[str, Any]]) -> None:
    """The convolution share of a profiled training step of each side, and the floor: the
    ratio ours/theirs if our convolutions took as long as torchvision's and everything else
    took no time (torchvision's convolution share of its own step)."""
    for side in SIDES:
        seconds = best[side]["seconds"]
        conv, total = seconds["train_conv"], seconds["train_profiled"]
        print(f"  profiled train step, {best[side]['label']}: convolutions {conv:.3f} s of "
              f"{total:.3f} s ({100 * conv / total:.0f}%)")
    theirs = best["torchvision"]["seconds"]
    print(f"  floor ratio for a train step with the same convolutions: "
          f"{theirs['train_conv'] / theirs['train_profiled']:.2f}")
    print_inference_throughput(best, peer="torchvision")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--profile", action="store_true", help="also profile one training step per side"
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.worker:
        settings = start_worker(args)
        dtype = autocast_dtype(args)
        finish_worker(args, settings, dtype, measure_case(args, args.case[0], dtype))
        return
    print_header("RetinaNet: plugdet against torchvision", args)
    for name in args.case:
        worker_argv = ["--case", name, "--repeats", str(args.repeats), "--warmup",
                       str(args.warmup), *(["--profile"] if args.profile else []),
                       *shared_flags(args)]
        best = best_of_rounds(__file__, worker_argv, args.rounds)
        depth, size, batch = CASES[name]
        print(f"[{name}] RetinaNet-R{depth}-FPN {size}x{size} batch {batch}")
        print_sides(best)
        for measure in ("train", "infer"):
            print(ratio_line(measure, best))
        if args.profile:
            print_convolution_floor(best)
            print(ratio_line("loss_only", best))
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
