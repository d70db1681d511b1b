"""Speed of our Faster R-CNN against torchvision's on the same CPU input, in one run.

R50-FPN, 512x512, batch 2, 80 classes, both with the same weights (copied from torchvision's),
trainable BatchNorm and the same normalised tensor (torchvision's resize/normalise transform
is skipped: ``TorchvisionRunner``). Per case, the best (least) seconds over interleaved runs
and the ratio ours / torchvision:

* ``train``: forward, both stages' losses, backward and an SGD step;
* ``inference``: proposals and detections of the batch;

Both also for ours with ``channels_last = true`` (weights and feature maps in channels-last
memory format, a detector option; torchvision's models have none).

Without weights the ResNet amplifies its input by orders of magnitude, which would saturate
the objectness and clamp every box delta (few proposals survive NMS); the FPN output convs are
scaled so that the levels have unit standard deviation, and both models then do the full
proposal and detection work a trained model does.

* ``targets``: the target path from given features and head outputs: RPN anchors,
  assignment, sampling, encoding and losses, then the RoI stage's assignment (gt added as
  proposals), sampling, encoding and losses on given class and box outputs.

    python bench/bench_faster_rcnn.py [--repeats 5] [--warmup 2] [--target-repeats 50]
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import torch
from plugdet_faster_rcnn.torchvision_compat import (
    TorchvisionRunner,
    load_torchvision_weights,
    torchvision_like_config,
)
from random_boxes import random_gt
from timing import interleaved_best
from torchvision.models.detection import fasterrcnn_resnet50_fpn
from torchvision.models.detection.roi_heads import fastrcnn_loss
from torchvision.models.detection.rpn import concat_box_prediction_layers

from core.plugins import get_registries
from core.structures import DetBatch, DetSample, Instances

NUM_THREADS = 2
NUM_CLASSES = 80
IMAGE_SIZE = 512
BATCH = 2
SGD_LR = 1e-4  # small: weights barely move, so every step does comparable work
BOX_SIZE = 4
#: ratio ours / torchvision each case must stay at or under
TARGETS = {"train": 1.0, "inference": 1.0, "targets": 0.6}


def random_targets(generator: torch.Generator) -> list[Instances]:
    return [Instances(*random_gt(IMAGE_SIZE, NUM_CLASSES, generator)) for _ in range(BATCH)]


def unit_features(model: torch.nn.Module, images: torch.Tensor) -> None:
    """Scale torchvision's FPN output convs so that its levels have unit standard deviation
    on ``images`` (the backbone is positively homogeneous)."""
    with torch.no_grad():
        feats = list(model.backbone(images).values())
        for block, level in zip(model.backbone.fpn.layer_blocks, feats, strict=False):
            block[0].weight /= level.std()
            block[0].bias /= level.std()



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--target-repeats", type=int, default=50,
                        help="repeats of the target path (milliseconds each: more runs, "
                             "a less disturbed best)")
    args = parser.parse_args()
    torch.set_num_threads(NUM_THREADS)
    torch.manual_seed(0)
    tv_model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None,
                                       num_classes=NUM_CLASSES + 1)
    generator = torch.Generator().manual_seed(2)
    images = torch.randn(BATCH, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    tv_model.eval()
    unit_features(tv_model, images)
    ours = get_registries().build("detector", torchvision_like_config(NUM_CLASSES),
                                  path="model")
    load_torchvision_weights(ours, tv_model)
    ours_cl = get_registries().build(
        "detector", {**torchvision_like_config(NUM_CLASSES), "channels_last": True},
        path="model")
    load_torchvision_weights(ours_cl, tv_model)
    runner = TorchvisionRunner(tv_model)
    gts = random_targets(generator)
    shape = (IMAGE_SIZE, IMAGE_SIZE)
    samples = [DetSample(img_shape=shape, ori_shape=shape, pad_shape=shape, gt=g) for g in gts]
    batch = DetBatch(images, samples)
    tv_targets = [{"boxes": g.boxes, "labels": g.labels} for g in gts]
    tv_targets_bg = [{"boxes": g.boxes, "labels": g.labels + 1} for g in gts]

    optimizers = {name: torch.optim.SGD(model.parameters(), lr=SGD_LR, momentum=0.9)
                  for name, model in (("ours", ours), ("ours channels-last", ours_cl),
                                      ("torchvision", tv_model))}
    losses = {"ours": lambda: ours.loss(batch),
              "ours channels-last": lambda: ours_cl.loss(batch),
              "torchvision": lambda: runner.loss(images, tv_targets)}

    def step(name: str) -> Callable[[], None]:
        def run() -> None:
            optimizers[name].zero_grad(set_to_none=True)
            values = losses[name]()
            sum(v for k, v in values.items() if k.startswith("loss")).backward()
            optimizers[name].step()
        return run

    results: dict[str, dict[str, float]] = {}
    for model in (ours, ours_cl, tv_model):
        model.train()
    results["train"] = interleaved_best({n: step(n) for n in optimizers}, args.warmup,
                                        args.repeats)
    for model in (ours, ours_cl, tv_model):
        model.eval()
    with torch.no_grad():
        results["inference"] = interleaved_best(
            {"ours": lambda: ours.predict(batch),
             "ours channels-last": lambda: ours_cl.predict(batch),
             "torchvision": lambda: runner.predict(images, [shape] * BATCH)},
            args.warmup, args.repeats)
        # the target path, from given features, head outputs and proposals
        feats = ours.extract_feat(images)
        objectness, deltas = ours.rpn_head(feats)
        proposals = ours.rpn_head.predict_by_feat(objectness, deltas, samples,
                                                  ours.rpn_head.train_postprocess)
        tv_feats = runner.features(images)
        tv_feat_list = list(tv_feats.values())
        tv_objectness, tv_deltas = tv_model.rpn.head(tv_feat_list)
        image_list = runner._image_list(images)
        tv_proposals = [p.boxes for p in proposals]

        def ours_targets() -> None:
            ours.rpn_head.loss_by_feat(objectness, deltas, samples)
            targets = ours.roi_head.targets(proposals, samples)
            count = len(targets.labels)
            ours.roi_head.loss_by_rois(torch.zeros(count, NUM_CLASSES + 1),
                                       torch.zeros(count, NUM_CLASSES, BOX_SIZE), targets)

        def tv_targets_path() -> None:
            rpn = tv_model.rpn
            anchors = rpn.anchor_generator(image_list, tv_feat_list)
            flat_obj, flat_deltas = concat_box_prediction_layers(tv_objectness, tv_deltas)
            labels, matched = rpn.assign_targets_to_anchors(anchors, tv_targets_bg)
            regression = rpn.box_coder.encode(matched, anchors)
            rpn.compute_loss(flat_obj, flat_deltas, labels, regression)
            roi = tv_model.roi_heads
            _, _, roi_labels, roi_regression = roi.select_training_samples(
                [p.clone() for p in tv_proposals], tv_targets_bg)
            count = sum(len(x) for x in roi_labels)
            fastrcnn_loss(torch.zeros(count, NUM_CLASSES + 1),
                          torch.zeros(count, (NUM_CLASSES + 1) * BOX_SIZE), roi_labels,
                          roi_regression)

        tv_model.roi_heads.train()
        results["targets"] = interleaved_best({"ours": ours_targets,
                                               "torchvision": tv_targets_path},
                                              args.warmup, args.target_repeats)
    load = os.getloadavg()
    print(f"Faster R-CNN R50-FPN {IMAGE_SIZE}x{IMAGE_SIZE} batch {BATCH}, {NUM_THREADS} "
          f"threads, best of {args.repeats} ({args.target_repeats} for the target path); "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    for case, times in results.items():
        ratio = times["ours"] / times["torchvision"]
        verdict = "ok" if ratio <= TARGETS[case] else "OVER"
        print(f"{case:10s} ours {times['ours']:.4f} s  torchvision {times['torchvision']:.4f} s"
              f"  ratio {ratio:.3f} (target <= {TARGETS[case]}) {verdict}")
        if "ours channels-last" in times:
            ratio = times["ours channels-last"] / times["torchvision"]
            verdict = "ok" if ratio <= TARGETS[case] else "OVER"
            print(f"{'':10s} ours channels-last {times['ours channels-last']:.4f} s  "
                  f"ratio {ratio:.3f} (target <= {TARGETS[case]}) {verdict}")


if __name__ == "__main__":
    main()
