"""Speed of our Faster R-CNN against torchvision's on the same CPU input, each framework in
its own process (2 threads each).

R50-FPN, 512x512, batch 2, 80 classes, both with the same weights (each process builds
torchvision's model from the same seed; ours copies its weights), trainable BatchNorm and the
same normalised tensor (torchvision's resize/normalise transform is skipped:
``TorchvisionRunner``). Per measure, the best (least) seconds and the ratio ours / torchvision
against its target (0.9; 0.6 for the target path):

* ``train``: forward, both stages' losses, backward and an SGD step;
* ``inference``: proposals and detections of the batch;
* ``targets``: the target path from given features and head outputs: RPN anchors,
  assignment, sampling, encoding and losses, then the RoI stage's assignment (gt added as
  proposals), sampling, encoding and losses on given class and box outputs; both sides get
  the same proposals (torchvision's training-mode RPN output of the fresh model) and run this
  path in float32 (ours from its head's float32 outputs with autocast off, as its ``loss``
  computes it).

Processes (:mod:`bench_process`): ``--rounds`` alternating worker processes of each side;
ours runs with plugdet's default settings for Faster R-CNN (float32, ``channels_last = true``,
the engine's CPU settings applied first in its process), torchvision as its users run it
(float32, no process settings). ``--amp`` (ours under bf16 autocast on a CPU with native
bf16), ``--ours-contiguous`` (ours in NCHW) and ``--no-cpu-settings`` show the effect of each.

Without weights the ResNet amplifies its input by orders of magnitude, which would saturate
the objectness and clamp every box delta (few proposals survive NMS); the FPN output convs are
scaled so that the levels have unit standard deviation, and both models then do the full
proposal and detection work a trained model does.

``--profile`` adds each side's inference convolutions: their share of a profiled batch and
their speed against this CPU's ceiling (:mod:`conv_throughput`), and the floor ratio with the
same convolutions.

    python bench/bench_faster_rcnn.py [--repeats 5] [--warmup 2] [--target-repeats 50]
        [--profile] [--rounds 2] [--amp] [--ours-contiguous] [--no-cpu-settings]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial

import torch
from bench_process import (
    TARGET_RATIO,
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
from conv_throughput import inference_convolutions, print_inference_throughput
from plugdet_faster_rcnn.torchvision_compat import (
    TorchvisionRunner,
    load_torchvision_weights,
    torchvision_like_config,
)
from random_boxes import random_gt
from timing import best_seconds
from torch import Tensor, nn
from torchvision.models.detection import fasterrcnn_resnet50_fpn
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import fastrcnn_loss
from torchvision.models.detection.rpn import concat_box_prediction_layers

from core.models.precision import levels_in_float32
from core.plugins import get_registries
from core.structures import DetBatch, DetSample, Instances

NUM_CLASSES = 80
IMAGE_SIZE = 512
BATCH = 2
SGD_LR = 1e-4  # small: weights barely move, so every step does comparable work
BOX_SIZE = 4
#: ratio ours / torchvision each measure must stay at or under
TARGETS = {"train": TARGET_RATIO, "inference": TARGET_RATIO, "targets": 0.6}


def random_targets(generator: torch.Generator) -> list[Instances]:
    return [Instances(*random_gt(IMAGE_SIZE, NUM_CLASSES, generator)) for _ in range(BATCH)]


def unit_features(model: nn.Module, images: Tensor) -> None:
    """Scale torchvision's FPN output convs so that its levels have unit standard deviation
    on ``images`` (the backbone is positively homogeneous)."""
    with torch.no_grad():
        feats = list(model.backbone(images).values())
        for block, level in zip(model.backbone.fpn.layer_blocks, feats, strict=False):
            block[0].weight /= level.std()
            block[0].bias /= level.std()


def training_proposals(tv_model: nn.Module, images: Tensor,
                       tv_targets_bg: list[dict[str, Tensor]]) -> list[Tensor]:
    """torchvision's training-mode proposals ``(R_i, 4)`` per image (the RoI stage's input in
    the target path; the same in both processes, computed before any training step)."""
    image_list = ImageList(images, [(IMAGE_SIZE, IMAGE_SIZE)] * len(images))
    with torch.no_grad():
        feats = tv_model.backbone(images)
        tv_model.rpn.train()
        proposals: list[Tensor]
        proposals, _ = tv_model.rpn(image_list, feats, tv_targets_bg)
        tv_model.rpn.eval()
    return proposals


def measure(args: argparse.Namespace, dtype: torch.dtype | None) -> dict[str, float]:
    """Seconds of ``"train"``, ``"inference"`` and ``"targets"`` on this worker's side (ours
    under autocast to ``dtype`` unless ``None``)."""
    torch.manual_seed(0)
    tv_model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None,
                                       num_classes=NUM_CLASSES + 1)
    generator = torch.Generator().manual_seed(2)
    images = torch.randn(BATCH, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    tv_model.eval()
    unit_features(tv_model, images)
    gts = random_targets(generator)
    shape = (IMAGE_SIZE, IMAGE_SIZE)
    samples = [DetSample(img_shape=shape, ori_shape=shape, pad_shape=shape, gt=g) for g in gts]
    batch = DetBatch(images, samples)
    tv_targets = [{"boxes": g.boxes, "labels": g.labels} for g in gts]
    tv_targets_bg = [{"boxes": g.boxes, "labels": g.labels + 1} for g in gts]
    tv_proposals = training_proposals(tv_model, images, tv_targets_bg)
    model: nn.Module = tv_model
    if args.side == "ours":
        cfg = {**torchvision_like_config(NUM_CLASSES), "channels_last": not args.ours_contiguous}
        model = get_registries().build("detector", cfg, path="model")
        load_torchvision_weights(model, tv_model)
        del tv_model
    runner = TorchvisionRunner(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=SGD_LR, momentum=0.9)

    def losses() -> dict[str, Tensor]:
        if args.side == "torchvision":
            return runner.loss(images, tv_targets)
        with precision(dtype):
            return model.loss(batch)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        sum(v for k, v in losses().items() if k.startswith("loss")).backward()
        optimizer.step()

    def predict() -> object:
        if args.side == "torchvision":
            return runner.predict(images, [shape] * BATCH)
        with precision(dtype):
            return model.predict(batch)

    model.train()
    seconds = {"train": best_seconds(step, args.warmup, args.repeats)}
    model.eval()
    with torch.no_grad():
        seconds["inference"] = best_seconds(predict, args.warmup, args.repeats)
        if args.profile:
            seconds.update(inference_convolutions(model, predict, partial(precision, dtype)))
        path = (tv_targets_path(model, images, tv_proposals, tv_targets_bg)
                if args.side == "torchvision"
                else ours_targets_path(model, images, tv_proposals, samples, dtype))
        seconds["targets"] = best_seconds(path, args.warmup, args.target_repeats)
    return seconds


def ours_targets_path(model: nn.Module, images: Tensor, proposals: list[Tensor],
                      samples: list[DetSample], dtype: torch.dtype | None
                      ) -> Callable[[], None]:
    """Our target path on given features, float32 RPN outputs and ``proposals``."""
    with precision(dtype):
        feats = model.extract_feat(images)
        objectness, deltas = levels_in_float32(model.rpn_head(feats))
    rois = [Instances(p, torch.zeros(len(p), dtype=torch.long)) for p in proposals]

    def run() -> None:
        model.rpn_head.loss_by_feat(objectness, deltas, samples)
        targets = model.roi_head.targets(rois, samples)
        count = len(targets.labels)
        model.roi_head.loss_by_rois(torch.zeros(count, NUM_CLASSES + 1),
                                    torch.zeros(count, NUM_CLASSES, BOX_SIZE), targets)

    return run


def tv_targets_path(model: nn.Module, images: Tensor, proposals: list[Tensor],
                    tv_targets_bg: list[dict[str, Tensor]]) -> Callable[[], None]:
    """torchvision's target path on given features, RPN outputs and ``proposals``."""
    feats = list(model.backbone(images).values())
    objectness, deltas = model.rpn.head(feats)
    image_list = ImageList(images, [(IMAGE_SIZE, IMAGE_SIZE)] * len(images))
    model.roi_heads.train()

    def run() -> None:
        rpn = model.rpn
        anchors = rpn.anchor_generator(image_list, feats)
        flat_obj, flat_deltas = concat_box_prediction_layers(objectness, deltas)
        labels, matched = rpn.assign_targets_to_anchors(anchors, tv_targets_bg)
        regression = rpn.box_coder.encode(matched, anchors)
        rpn.compute_loss(flat_obj, flat_deltas, labels, regression)
        _, _, roi_labels, roi_regression = model.roi_heads.select_training_samples(
            [p.clone() for p in proposals], tv_targets_bg)
        count = sum(len(x) for x in roi_labels)
        fastrcnn_loss(torch.zeros(count, NUM_CLASSES + 1),
                      torch.zeros(count, (NUM_CLASSES + 1) * BOX_SIZE), roi_labels,
                      roi_regression)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--target-repeats", type=int, default=50,
                        help="repeats of the target path (milliseconds each: more runs, "
                             "a less disturbed best)")
    parser.add_argument("--profile", action="store_true",
                        help="also the convolution share and speed of a profiled inference")
    add_arguments(parser)
    args = parser.parse_args()
    if args.worker:
        settings = start_worker(args)
        dtype = autocast_dtype(args)
        finish_worker(args, settings, dtype, measure(args, dtype))
        return
    print_header(f"Faster R-CNN R50-FPN {IMAGE_SIZE}x{IMAGE_SIZE} batch {BATCH}: plugdet "
                 f"against torchvision ({args.target_repeats} repeats for the target path)",
                 args)
    worker_argv = ["--repeats", str(args.repeats), "--warmup", str(args.warmup),
                   "--target-repeats", str(args.target_repeats),
                   *(["--profile"] if args.profile else []), *shared_flags(args)]
    best = best_of_rounds(__file__, worker_argv, args.rounds)
    print_sides(best)
    for case, target in TARGETS.items():
        print(ratio_line(case, best, target))
    if args.profile:
        print_inference_throughput(best, peer="torchvision")
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
