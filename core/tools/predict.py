"""Run a trained detector on new images: files, folders and glob patterns.

    python -m core.tools.predict CONFIG CKPT SOURCE [SOURCE ...] --out DIR

Images go through the config's test pipeline (``test_dataloader``, else ``val_dataloader``)
in batches. ``DIR`` receives every image drawn with its boxes, class names, scores and, for a
model that predicts instance masks, its masks (``<stem>.png``) and ``predictions.json``::

    {"config", "checkpoint", "classes", "score_thr",
     "images": [{"id", "file", "width", "height",
                 "detections": [{"box": [x1, y1, x2, y2], "score", "label", "class",
                                 "segmentation": {"size": [h, w], "counts": str}}]}],
     "skipped": [{"file", "error"}]}

with boxes in original image pixels and ``segmentation`` (only with masks) the detection's
mask as a COCO RLE of the original image (``pycocotools.mask.decode`` reads it).
``--coco`` also writes ``predictions_coco.json`` in the COCO results format (``image_id`` =
the image's ``id`` above, ``category_id`` = label + 1, ``bbox`` = ``[x, y, w, h]``, and
``segmentation`` with masks). ``--slice N`` predicts tiles of N x N pixels of each image
(overlapping by ``--overlap``, ``--batch-size`` tiles per forward pass) and merges their
detections (``--merge``; see ``docs/slicing.md``); ``predictions.json`` then also holds the
``slice`` settings. Slicing merges boxes only: a model that predicts masks is refused.
Files that cannot be read are named on stderr and skipped, as are images whose header
announces more pixels than ``PLUGDET_MAX_IMAGE_PIXELS`` (default 100 megapixels; see
:mod:`core.data.pixel_limit`), before they are decoded. A file reached by several paths
(symlinks, globs) is predicted once.
"""

from __future__ import annotations

import argparse
import functools
import glob
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from PIL import Image

from core.data.loader import collate_samples
from core.data.pixel_limit import max_image_pixels
from core.data.slicing import SliceSettings, predict_sliced
from core.data.transforms.loading import read_image
from core.data.transforms.tta import merge_tta_predictions
from core.engine.cpu_tuning import apply_cpu_settings
from core.engine.full_config import load_full_config
from core.engine.progress import ProgressBar
from core.engine.run_config import TTA_DEFAULTS, flush_denormal_of, resolve_amp, resolve_device
from core.errors import ConfigError, DataError
from core.evaluation.records import encode_masks
from core.structures import DetBatch, DetSample, Instances
from core.tools.cli import (
    add_override_arguments,
    check_output_folder,
    make_output_folder,
    run_tool,
)
from core.tools.inference import (
    build_test_transforms,
    class_names,
    eval_loader_table,
    load_detector,
)
from core.visualization import Visualizer

#: The formats the image decoder reads (what a folder source picks up).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif")
GLOB_CHARACTERS = "*?["
JSON_FILE = "predictions.json"
COCO_FILE = "predictions_coco.json"

EXAMPLES = """examples:
  {prog} CONFIG work_dirs/demo/RUN/best.pth photos/ --out predictions
  {prog} CONFIG CKPT 'shots/**/*.jpg' a.png --score-thr 0.5 --tta --coco
  {prog} CONFIG CKPT aerial/ --slice 512 --overlap 0.2 --full-image --out DIR
      (small objects on large images: 512-pixel tiles, their detections merged)
  PLUGDET_MAX_IMAGE_PIXELS=200000000 {prog} CONFIG CKPT aerial.png --out DIR
      (reads images up to 200 megapixels; the default limit is 100)
"""


@attrs.define
class ImageResult:
    """The detections of one image, boxes ``(N, 4)`` xyxy in its original pixels."""

    id: int
    file: Path
    width: int
    height: int
    detections: Instances


def _folders_below(base: str) -> list[str]:
    """``base`` and every folder below it, symlinked ones included but each real folder once
    (a link back up is not followed again); hidden ones left out, as ``glob`` does."""
    found: list[str] = []
    seen: set[str] = set()
    stack = [base]
    while stack:
        folder = stack.pop()
        real = os.path.realpath(folder or os.curdir)
        if real in seen:
            continue
        seen.add(real)
        found.append(folder)
        try:
            with os.scandir(folder or os.curdir) as listing:
                names = sorted(e.name for e in listing
                               if not e.name.startswith(".") and e.is_dir())
        except OSError:
            continue
        stack.extend(os.path.join(folder, name) for name in reversed(names))
    return found


def expand_glob(pattern: str) -> list[str]:
    """The paths ``pattern`` matches, as ``glob.glob(pattern, recursive=True)`` finds them,
    except that ``**`` enters each real folder once: a symlink loop ends."""
    parts = pattern.split(os.sep)
    if "**" not in parts:
        return glob.glob(pattern)
    cut = parts.index("**")
    head = os.sep.join(parts[:cut])
    rest = os.sep.join(parts[cut + 1:]) if cut + 1 < len(parts) else "*"  # "d/**": all below
    if parts[:cut] == [""]:
        head = os.sep  # an absolute pattern starting with /**
    bases = glob.glob(head) if glob.has_magic(head) else [head]
    return [match for base in bases if os.path.isdir(base or os.curdir)
            for folder in _folders_below(base)
            for match in expand_glob(os.path.join(glob.escape(folder), rest))]


def collect_images(sources: Sequence[str]) -> list[Path]:
    """Image files named by ``sources``: files, folders (their image files, sorted) and glob
    patterns (``**`` recursive, through symlinked folders but never round a loop), in order
    of appearance. A file reached by several paths (symlinks, ``./``) is taken once, under the
    first of them.

    :raises DataError: a source that is no file or folder and matches nothing.
    """
    found: dict[str, Path] = {}
    for source in sources:
        path = Path(source).expanduser()
        if path.is_file():
            matches = [path]
        elif path.is_dir():
            matches = sorted(p for p in path.iterdir()
                             if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif any(c in source for c in GLOB_CHARACTERS):
            matches = sorted(Path(p) for p in expand_glob(str(path)) if Path(p).is_file())
        else:
            matches = []
        if not matches:
            raise DataError(f"{source}: no such image file or folder, or no image matches it")
        for match in matches:
            found.setdefault(os.path.realpath(match), match)
    return list(found.values())


def _batches(items: Sequence[Path], size: int) -> Iterable[list[tuple[int, Path]]]:
    indexed = list(enumerate(items))
    for start in range(0, len(indexed), size):
        yield indexed[start:start + size]


class Predictor:
    """A detector with its test pipeline, turning image files into :class:`ImageResult`.

    :param model: the detector in eval mode (``predict(batch)`` -> original-pixel boxes).
    :param transforms: the test pipeline's transforms.
    :param device: where the model runs.
    :param tta: the transforms end in ``TestTimeAug``; merge the views' predictions.
    :param tta_settings: ``iou_thr`` and ``max_per_img`` of the merge.
    :param pad_value: padding value of the batch tensor (the loader's ``pad_value``).
    :param size_divisor: batch size rounded up to a multiple (the loader's ``size_divisor``).
    :param amp_dtype: autocast dtype of the forward pass (the config's ``amp``, as ``plugdet
        test`` uses it), or None for float32.
    """

    def __init__(self, model: torch.nn.Module, transforms: list[Any], device: torch.device,
                 tta: bool = False, tta_settings: dict[str, Any] | None = None,
                 pad_value: float = 0.0, size_divisor: int = 1,
                 amp_dtype: torch.dtype | None = None) -> None:
        self.model = model
        self.amp_dtype = amp_dtype
        self.transforms = transforms
        self.device = device
        self.tta = tta
        self.tta_settings = {**TTA_DEFAULTS, **(tta_settings or {})}
        self.pad_value = pad_value
        self.size_divisor = size_divisor
        self._rng = np.random.default_rng(0)

    def load(self, index: int, path: Path) -> DetSample | list[DetSample]:
        """The sample (or TTA views) of one file; DataError when it cannot be read."""
        item: Any = DetSample(img_id=index, img_path=str(path))
        for transform in self.transforms:
            item = transform(item, self._rng)
        return item

    @torch.no_grad()
    def predict(self, items: Sequence[DetSample | list[DetSample]]) -> list[ImageResult]:
        """Detections of loaded samples, one result per image, in the order given."""
        batch = collate_samples(items, pad_value=self.pad_value, size_divisor=self.size_divisor)
        preds = self._forward(batch)
        samples = batch.samples
        if self.tta:
            samples, preds = merge_tta_predictions(
                samples, preds, iou_thr=self.tta_settings["iou_thr"],
                max_per_img=self.tta_settings["max_per_img"])
        return [ImageResult(int(s.img_id), Path(s.img_path), int(s.ori_shape[1]),
                            int(s.ori_shape[0]), pred) for s, pred in zip(samples, preds,
                                                                           strict=True)]

    def _prepare(self, sample: DetSample) -> DetSample:
        for transform in self.transforms:
            sample = transform(sample, self._rng)
        return sample

    def _forward(self, batch: DetBatch) -> list[Instances]:
        """The model's predictions of a batch, on the CPU, in the config's precision."""
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            return [p.to("cpu") for p in self.model.predict(batch.to(self.device))]

    def _predict_batch(self, batch: DetBatch) -> list[Instances]:
        """The tiles' detections; :class:`ConfigError` for a model that predicts masks (the
        tiles' merge joins boxes, not masks)."""
        preds = self._forward(batch)
        if any(p.masks is not None for p in preds):
            raise ConfigError("--slice: the model predicts instance masks and sliced "
                              "prediction merges boxes only; predict without --slice")
        return preds

    @torch.no_grad()
    def predict_sliced(self, index: int, path: Path, settings: SliceSettings) -> ImageResult:
        """The merged detections of the tiles of one file (``settings.batch_size`` tiles per
        forward pass); DataError when it cannot be read."""
        image = read_image(path)
        collate = functools.partial(collate_samples, pad_value=self.pad_value,
                                    size_divisor=self.size_divisor)
        detections = predict_sliced(image, settings, self._predict_batch, self._prepare,
                                    collate, index, str(path))
        return ImageResult(index, path, int(image.shape[2]), int(image.shape[1]), detections)


def detection_records(result: ImageResult, classes: Sequence[str],
                      score_thr: float) -> list[dict[str, Any]]:
    """The detections of ``result`` scoring at least ``score_thr``, highest score first; with
    masks each has its ``segmentation`` (COCO RLE, ``counts`` as str)."""
    det = result.detections
    order = torch.argsort(det.scores, descending=True, stable=True)
    kept = [i for i in order.tolist() if float(det.scores[i]) >= score_thr]
    records = [{"box": [round(float(v), 3) for v in det.boxes[i]], "score": float(det.scores[i]),
                "label": int(det.labels[i]), "class": classes[int(det.labels[i])]}
               for i in kept]
    if det.masks is not None:
        if not isinstance(det.masks, torch.Tensor) or det.masks.shape[1:] != (
                result.height, result.width):
            raise DataError(f"{result.file}: predicted masks must be (N, {result.height}, "
                            f"{result.width}) bitmaps of the original image")
        for record, rle in zip(records, encode_masks(det.masks[kept]), strict=True):
            record["segmentation"] = rle
    return records


def coco_records(image_id: int, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """COCO results entries (``bbox`` as ``[x, y, w, h]``, ``category_id`` = label + 1, and
    the ``segmentation`` of records that have one)."""
    return [{"image_id": image_id, "category_id": r["label"] + 1,
             "bbox": [r["box"][0], r["box"][1], r["box"][2] - r["box"][0],
                      r["box"][3] - r["box"][1]], "score": r["score"],
             **({"segmentation": r["segmentation"]} if "segmentation" in r else {})}
            for r in records]


def _output_names(files: Sequence[Path]) -> dict[Path, str]:
    """``<stem>.png`` per file, ``<stem>_<n>.png`` where two files share a stem."""
    names: dict[Path, str] = {}
    taken: set[str] = set()
    for file in files:
        name, count = f"{file.stem}.png", 1
        while name in taken:
            name, count = f"{file.stem}_{count}.png", count + 1
        taken.add(name)
        names[file] = name
    return names


def slice_settings(args: argparse.Namespace) -> SliceSettings | None:
    """The ``--slice`` options as settings (``None`` without ``--slice``).

    :raises ConfigError: a value out of range, or slicing combined with ``--tta``.
    """
    if args.slice is None:
        return None
    if args.tta:
        raise ConfigError("--slice and --tta cannot be combined")
    table = {"size": args.slice, "overlap": args.overlap, "full_image": args.full_image,
             "merge": args.merge, "match_metric": args.match_metric,
             "match_threshold": args.match_threshold, "batch_size": args.batch_size}
    return SliceSettings.from_table(table)


def _predict_files(predictor: Predictor, batch: list[tuple[int, Path]],
                   settings: SliceSettings | None,
                   skip: Callable[[Path, DataError], None]) -> list[ImageResult]:
    """The results of the files of ``batch`` that can be read; ``skip`` gets the others."""
    if settings is not None:
        results = []
        for index, path in batch:
            try:
                results.append(predictor.predict_sliced(index, path, settings))
            except DataError as exc:
                skip(path, exc)
        return results
    items = []
    for index, path in batch:
        try:
            items.append(predictor.load(index, path))
        except DataError as exc:
            skip(path, exc)
    return predictor.predict(items) if items else []


def run_predict(args: argparse.Namespace) -> str:
    """Predict every source image; returns the summary line."""
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: expected >= 1, got {args.batch_size}")
    settings = slice_settings(args)
    out = check_output_folder(Path(args.out).expanduser())
    max_image_pixels()  # a bad limit in the environment is an error before any work
    cfg = load_full_config(args.config, args.overrides, allow_new=args.set_new)
    device = resolve_device(args.device)
    apply_cpu_settings(flush_denormal_of(cfg))  # as in training and ``plugdet test``
    files = collect_images(args.sources)
    model = load_detector(cfg, args.checkpoint, device)
    _, loader = eval_loader_table(cfg)
    head = getattr(model, "head", None)
    classes = class_names(cfg, int(getattr(head, "num_classes", 0)))
    predictor = Predictor(model, build_test_transforms(cfg, args.tta), device, tta=args.tta,
                          tta_settings=cfg.get("tta"), pad_value=loader.get("pad_value", 0.0),
                          size_divisor=loader.get("size_divisor", 1),
                          amp_dtype=resolve_amp(cfg.get("amp", False), device))
    make_output_folder(out)
    names = _output_names(files)
    visualizer = Visualizer(name="predict")
    bar = ProgressBar(sys.stderr) if sys.stderr.isatty() else None
    images: list[dict[str, Any]] = []
    coco: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []

    def skip(path: Path, exc: DataError) -> None:
        if bar is not None:
            bar.clear()
        print(f"skipped: {exc}", file=sys.stderr)
        skipped.append({"file": str(path), "error": str(exc)})

    for batch in _batches(files, args.batch_size):
        for result in _predict_files(predictor, batch, settings, skip):
            records = detection_records(result, classes, args.score_thr)
            rgb = read_image(result.file).permute(1, 2, 0).numpy()
            drawn = visualizer.draw_instances(rgb, result.detections, classes,
                                              score_thr=args.score_thr)
            Image.fromarray(drawn).save(out / names[result.file])
            images.append({"id": result.id, "file": str(result.file), "width": result.width,
                           "height": result.height, "detections": records})
            coco += coco_records(result.id, records)
        if bar is not None:
            bar.update(batch[-1][0] + 1, len(files), f"images -> {out}")
    if bar is not None:
        bar.finish()
    if not images:
        raise DataError(f"none of the {len(files)} images could be read (see above)")
    payload = {"config": str(args.config), "checkpoint": str(args.checkpoint),
               "classes": list(classes), "score_thr": args.score_thr, "images": images,
               "skipped": skipped}
    if settings is not None:
        payload["slice"] = attrs.asdict(settings)
    (out / JSON_FILE).write_text(json.dumps(payload, indent=1), encoding="utf-8")
    if args.coco:
        (out / COCO_FILE).write_text(json.dumps(coco), encoding="utf-8")
    count = sum(len(i["detections"]) for i in images)
    note = f"; skipped {len(skipped)} unreadable: " + ", ".join(
        s["file"] for s in skipped) if skipped else ""
    return f"{len(images)} images, {count} detections -> {out / JSON_FILE}{note}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``predict`` (shared with ``plugdet predict``)."""
    parser.add_argument("config", help="the TOML config the checkpoint was trained with")
    parser.add_argument("checkpoint", help="a checkpoint (.pth) of that config")
    parser.add_argument("sources", nargs="+", metavar="SOURCE",
                        help="image files, folders of images or glob patterns")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder for the drawn images and predictions.json")
    parser.add_argument("--score-thr", type=float, default=0.3,
                        help="detections scoring lower are left out (default 0.3)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per batch (default 8)")
    parser.add_argument("--tta", action="store_true",
                        help="test-time augmentation (the config's [tta] views)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="where to run (default auto: CUDA when available)")
    parser.add_argument("--coco", action="store_true",
                        help="also write predictions_coco.json in COCO results format")
    parser.add_argument("--slice", type=int, metavar="N",
                        help="predict N x N tiles of each image and merge their detections")
    parser.add_argument("--overlap", type=float, default=0.2,
                        help="overlap ratio of neighbouring tiles (default 0.2)")
    parser.add_argument("--full-image", action="store_true",
                        help="with --slice, also predict the whole (resized) image")
    parser.add_argument("--merge", choices=["greedy_nmm", "nms"], default="greedy_nmm",
                        help="how the tiles' detections are merged (default greedy_nmm)")
    parser.add_argument("--match-metric", choices=["ios", "iou"], default="ios",
                        help="overlap measure of the merge: intersection over the smaller box "
                             "or over the union (default ios)")
    parser.add_argument("--match-threshold", type=float, default=0.5,
                        help="boxes overlapping from this value on are merged (default 0.5)")
    add_override_arguments(parser)


def main(argv: list[str] | None = None, prog: str = "python -m core.tools.predict") -> int:
    """Run the tool; returns the exit status."""
    return run_tool(argv, prog, __doc__, EXAMPLES, add_arguments, run_predict)


if __name__ == "__main__":
    sys.exit(main())
