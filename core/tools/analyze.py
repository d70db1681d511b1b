"""Error analysis of a trained run: a static web page and a short text summary.

    python -m core.tools.analyze RUN_DIR [--checkpoint best|last|PATH] [--split test|val]

runs the checkpoint on the split (the run's saved ``config.toml`` builds the model and the
data; predictions in original image pixels, as ``plugdet test --out`` writes them) and writes
``RUN_DIR/report/index.html`` (``--out`` elsewhere) with its pictures beside it: the run's
config, data, best metrics and training curves; AP per class (AP50, AP75, small / medium /
large, box counts); the TIDE error breakdown, overall and per class; AP by object size and
aspect ratio, recall against IoU; PR curves and the confusion matrix; the assigner's
statistics logged during training; the worst images drawn with their errors. The page opens
from disk and fetches nothing from the network.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from core.analysis.coco_tables import coco_tables
from core.analysis.drawing import draw_verdict
from core.analysis.report import Analysis, ImageRow, summary_lines, write_report
from core.analysis.run_dir import CONFIG_FILE, checkpoint_of, read_run
from core.analysis.tide import IGNORED, TRUE_POSITIVE, TideReport, tide_breakdown
from core.data.loader import build_dataloader
from core.engine.cpu_tuning import apply_cpu_settings
from core.engine.full_config import load_full_config
from core.engine.run_config import flush_denormal_of, resolve_amp, resolve_device
from core.errors import ConfigError
from core.evaluation.records import ImageResult, record_from_sample
from core.structures import DetSample
from core.tools.cli import check_output_folder, make_output_folder, run_tool
from core.tools.inference import load_detector
from core.visualization.hooks.samples import load_original_image, samples_with_predictions
from core.visualization.plots import save_confusion_matrix, save_pr_curves

REPORT_DIR = "report"
SPLITS = ("test", "val")
EXAMPLES = """examples:
  {prog} work_dirs/retinanet_tinynet_fpn_demo_shapes/20260101_120000
  {prog} RUN_DIR --checkpoint last --split val --num-images 96
  {prog} RUN_DIR --checkpoint other.pth --out /tmp/report
"""


def _loader_key(cfg: dict[str, Any], split: str) -> str:
    key = f"{split}_dataloader"
    if not isinstance(cfg.get(key), dict):
        raise ConfigError(f"--split {split}: the run's config has no [{key}] table")
    return key


@torch.no_grad()
def predict_split(model: torch.nn.Module, loader: Any, device: torch.device,
                  amp_dtype: torch.dtype | None = None
                  ) -> tuple[list[ImageResult], list[DetSample]]:
    """Run ``model`` over ``loader`` (under autocast to ``amp_dtype``, the run's precision,
    unless None); the metric records (ground truth and predictions in original pixels) and
    the samples with ``pred`` set (images dropped)."""
    records: list[ImageResult] = []
    samples: list[DetSample] = []
    for batch in loader:
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                            enabled=amp_dtype is not None):
            preds = [pred.to("cpu") for pred in model.predict(batch.to(device))]
        done = samples_with_predictions(batch, preds)
        records += [record_from_sample(sample) for sample in done]
        samples += done
    return records, samples


def _image_rows(records: list[ImageResult], samples: list[DetSample], tide: TideReport,
                classes: tuple[str, ...], score_thr: float, count: int,
                out_dir: Path) -> list[ImageRow]:
    """Draw the ``count`` images with the most false positives and misses."""
    ranked = []
    for record, sample, verdict in zip(records, samples, tide.images, strict=True):
        scores = record.pred_scores[verdict.pred_index]
        kinds = [k for k, s in zip(verdict.pred_kind, scores, strict=True) if s >= score_thr]
        errors = {k: kinds.count(k) for k in set(kinds) - {TRUE_POSITIVE, IGNORED}}
        missed = int((~verdict.gt_matched).sum())
        ranked.append((sum(errors.values()) + missed, record, sample, verdict, errors, missed,
                       kinds.count(TRUE_POSITIVE)))
    ranked.sort(key=lambda item: -item[0])
    rows = []
    for total, record, sample, verdict, errors, missed, tps in ranked[:count]:
        if total == 0:
            break
        file = f"images/{record.img_id}.png"
        draw_verdict(load_original_image(sample), record, verdict, classes, score_thr,
                     out_dir / file)
        rows.append(ImageRow(record.img_id, file, Path(sample.img_path).name, tps,
                             sum(errors.values()), missed, errors))
    return rows


def run_analyze(args: argparse.Namespace) -> str:
    """Analyse the run; returns the summary (several lines)."""
    started = time.perf_counter()
    run = read_run(args.run_dir)
    checkpoint = checkpoint_of(run, args.checkpoint)
    out_dir = check_output_folder(Path(args.out) if args.out else run.path / REPORT_DIR)
    if args.num_images < 0:
        raise ConfigError(f"--num-images: expected >= 0, got {args.num_images}")
    cfg = load_full_config(str(run.path / CONFIG_FILE))
    key = _loader_key(cfg, args.split)
    device = resolve_device(args.device)
    apply_cpu_settings(flush_denormal_of(cfg))  # as the run that is analysed
    model = load_detector(cfg, str(checkpoint), device)
    loader = build_dataloader(cfg[key], path=key, seed=int(cfg.get("seed", 0)))
    classes = tuple(loader.dataset.classes)
    records, samples = predict_split(model, loader, device,
                                     resolve_amp(cfg.get("amp", False), device))
    make_output_folder(out_dir)
    tide = tide_breakdown(records, classes)
    plots = [("pr_curves.png", "precision-recall curves (IoU 0.5)"),
             ("confusion_matrix.png", f"confusion matrix (IoU 0.5, score >= {args.score_thr})")]
    save_pr_curves(samples, classes, out_dir / plots[0][0], 0.5)
    save_confusion_matrix(samples, classes, out_dir / plots[1][0], 0.5, args.score_thr)
    analysis = Analysis(
        run=run, checkpoint=checkpoint, split=args.split, classes=classes,
        num_images=len(records), tables=coco_tables(records, classes), tide=tide,
        images=_image_rows(records, samples, tide, classes, args.score_thr, args.num_images,
                           out_dir),
        score_thr=args.score_thr, plots=plots)
    page = write_report(analysis, out_dir)
    seconds = time.perf_counter() - started
    return "\n".join([*summary_lines(analysis), f"report: {page} ({seconds:.1f} s)"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``analyze`` (shared with ``plugdet analyze``)."""
    parser.add_argument("run_dir", help="a training run's directory (config.toml, checkpoints, "
                                        "vis_data)")
    parser.add_argument("--checkpoint", default="best", metavar="best|last|PATH",
                        help="the checkpoint to analyse (default best)")
    parser.add_argument("--split", default="test", choices=SPLITS,
                        help="the data loader to run on (default test)")
    parser.add_argument("--out", metavar="DIR", help="the report folder (default RUN_DIR/report)")
    parser.add_argument("--num-images", type=int, default=48,
                        help="worst images drawn (default 48)")
    parser.add_argument("--score-thr", type=float, default=0.3,
                        help="detections drawn and counted in the worst images and the "
                             "confusion matrix from this score (default 0.3)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="where to run (default auto: CUDA when available)")


def main(argv: list[str] | None = None, prog: str = "python -m core.tools.analyze") -> int:
    """Run the tool; returns the exit status."""
    return run_tool(argv, prog, __doc__, EXAMPLES, add_arguments, run_analyze)


if __name__ == "__main__":
    sys.exit(main())

