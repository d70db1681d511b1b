"""``python -m assigner_vis CONFIG --out DIR``: one PNG of positive priors per image."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from assigner_vis.render import render_anchor_panels, render_positives, render_roi_samples
from assigner_vis.roi_samples import collect_roi_samples, has_roi_stage
from assigner_vis.weights import initial_weights, load_weights, untrained_warning
from core.api import (
    CheckpointError,
    ConfigError,
    Visualizer,
    add_override_arguments,
    collect_positives,
    dense_head_of,
    load_full_config,
    load_original_image,
    set_random_seed,
)

SUMMARY_FILE = "positives.json"
#: Summary of a two-stage detector's sampled RoIs; their PNGs end in ``_rois.png``.
ROI_SUMMARY_FILE = "roi_samples.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m assigner_vis",
        description="Draw, for each image, its ground truth and the priors the model's assigner "
        "makes positive (dot colour = feature level; legend: prior index in the cell, size).",
    )
    parser.add_argument("config", help="training config (TOML)")
    parser.add_argument("--out", required=True, help="output folder (one PNG per image)")
    parser.add_argument("--n", type=int, default=8, help="number of images (default 8)")
    parser.add_argument("--split", choices=("train", "val"), default="train",
                        help="images of train_dataloader or val_dataloader (default train)")
    parser.add_argument("--train-pipeline", action="store_true",
                        help="keep the split's own pipeline (random augmentation included); "
                        "default: the deterministic val_dataloader pipeline")
    parser.add_argument("--show-prior", action="store_true", help="draw the positive priors")
    parser.add_argument("--per-anchor", action="store_true",
                        help="also write <image>_anchors.png: one panel per level and prior "
                        "index in the cell (which anchor shapes each box matches)")
    parser.add_argument("--checkpoint", metavar="PATH",
                        help="plugdet checkpoint whose weights the model runs with (needed "
                        "for assigners that use the predictions, e.g. TaskAligned, SimOTA); "
                        "default: the initial weights of a training run")
    parser.add_argument("--ema", action="store_true",
                        help="use the checkpoint's EMA weights (ema_state_dict, written by "
                        "an EMAHook) instead of its training weights (state_dict)")
    add_override_arguments(parser, allow_new=False)
    return parser.parse_args(argv)


def loader_table(cfg: dict[str, Any], split: str, keep_pipeline: bool) -> dict[str, Any]:
    """The split's loader table: one image per batch, in order, no workers."""
    key = f"{split}_dataloader"
    if key not in cfg:
        raise ConfigError(f"{key}: missing table")
    table = {**cfg[key], "batch_size": 1, "shuffle": False, "num_workers": 0,
             "persistent_workers": False}
    dataset = dict(table["dataset"])
    if not keep_pipeline:
        if "val_dataloader" not in cfg:
            raise ConfigError("val_dataloader: missing (its pipeline is used; or pass "
                              "--train-pipeline)")
        dataset["pipeline"] = cfg["val_dataloader"]["dataset"].get("pipeline", [])
    table["dataset"] = dataset
    return table


def run(args: argparse.Namespace) -> list[Path]:
    """Write the PNGs and ``positives.json`` (for a two-stage detector also the sampled RoIs:
    ``<image>_rois.png`` and ``roi_samples.json``); returns the PNG paths.

    :raises ConfigError: bad options or config; CheckpointError: a bad ``--checkpoint``.
    """
    from core.api import build_dataloader, get_registries

    if args.n < 1:
        raise ConfigError(f"--n: expected a positive number of images, got {args.n}")
    if args.ema and not args.checkpoint:
        raise ConfigError("--ema: needs --checkpoint (the file holding the EMA weights)")
    cfg = load_full_config(args.config, overrides=args.overrides)
    # seeded as a training run is: without a checkpoint, the weights it starts from
    set_random_seed(cfg.get("seed", 0))
    detector = get_registries().build("detector", cfg["model"], path="model")
    if args.checkpoint:
        weights = load_weights(detector, args.checkpoint, ema=args.ema)
    else:
        weights = initial_weights()
        warning = untrained_warning(getattr(dense_head_of(detector), "assigner", None))
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    detector.eval()
    loader = build_dataloader(loader_table(cfg, args.split, args.train_pipeline),
                              path=f"{args.split}_dataloader", seed=cfg.get("seed", 0))
    classes = loader.dataset.classes
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    visualizer = Visualizer(name="assigner_vis")
    two_stage = has_roi_stage(detector)
    written, summary, roi_summary = [], [], []
    for batch in loader:
        for positives in collect_positives(detector, batch.images, batch.samples):
            sample = positives.sample
            image = render_positives(visualizer, load_original_image(sample), positives,
                                     classes, show_prior=args.show_prior)
            path = out_dir / f"{Path(sample.img_path).stem or sample.img_id}.png"
            Image.fromarray(image).save(path)
            written.append(path)
            summary.append(positives.as_dict(weights))
            if args.per_anchor:
                panels = render_anchor_panels(visualizer, load_original_image(sample),
                                              positives, classes)
                Image.fromarray(panels).save(path.with_name(f"{path.stem}_anchors.png"))
        if two_stage:
            for rois in collect_roi_samples(detector, batch):
                sample = rois.sample
                image = render_roi_samples(visualizer, load_original_image(sample), rois,
                                           classes)
                path = out_dir / f"{Path(sample.img_path).stem or sample.img_id}_rois.png"
                Image.fromarray(image).save(path)
                roi_summary.append(rois.as_dict())
        if len(written) >= args.n:
            break
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1), encoding="utf-8")
    if two_stage:
        (out_dir / ROI_SUMMARY_FILE).write_text(json.dumps(roi_summary, indent=1),
                                                encoding="utf-8")
    visualizer.close()
    return written


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        written = run(args)
    except (ConfigError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} images to {args.out}")
    return 0
