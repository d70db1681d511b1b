"""Annotation loading, evaluation and loader memory at COCO scale, on COCO-like files.

    python bench/bench_scale.py [--sizes 10000 30000 60000 118287] [--data DIR]
                                [--eval-images 5000] [--batch-size 32] [--loader-images N]
                                [--skip-loader]

The files come from ``bench/coco_like.py`` (COCO train2017's shape, with polygon
segmentations; made once under ``--data``, default ``$TMPDIR/plugdet_coco_like``). Each
measurement runs in its own process, so that memory of one does not count in another; memory
is the resident set (``VmRSS``) after the step minus before it, and its peak (``VmHWM``)
minus the same start.

Per size (a line each): the file size; ``json.load`` time; plugdet's
``CocoDataset(check_images=False)`` index build, first with an empty index cache
(``PLUGDET_CACHE_DIR`` in a temporary folder) and then from the cache it wrote, with its
memory and the bytes per box of its index (``dataset.records.nbytes / boxes``);
``pycocotools.coco.COCO(file)`` load time and memory; and pycocotools / plugdet ratios.

Evaluation: ``--eval-images`` images (COCO val2017 has 5,000) with 100 detections each,
evaluated by pycocotools and by faster-coco-eval (``loadRes`` + ``evaluate`` +
``accumulate`` + ``summarize``; the ground truth is loaded before the clock starts), with the
largest difference of the 12 ``stats``.

Loader: a ``DataLoader`` with ``num_workers=2`` over one epoch of the largest index (or its
first ``--loader-images``) with a light pipeline (decode the pooled JPEG, resize to 160 px);
the resident (RSS), proportional (PSS) and unique (USS) memory of each worker and of the main
process from ``/proc/<pid>/smaps_rollup``, after the first batch and after the last. The
loader's process restores the index from a cache written by another process first
(``--loader-index cached``, as every run after the first), or parses the file itself
(``parsed``; the workers then inherit the parse's freed heap too).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
RESULT = "RESULT "
SIZES = (10_000, 30_000, 60_000, 118_287)
#: bump when coco_like.py changes what it writes, so that older files are made again.
DATA_VERSION = 1


# --- system --------------------------------------------------------------------------------
def cpu_description() -> str:
    """The CPU's ``model name`` and whether it has the ``avx512_bf16`` / AMX flags."""
    name, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    marks = [f"{flag} {'yes' if flag in flags else 'no'}"
             for flag in ("avx512_bf16", "amx_tile", "amx_bf16")]
    return f"{name}, {os.cpu_count()} CPUs ({', '.join(marks)})"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def status_kib(field: str, pid: int | str = "self") -> int:
    """A ``/proc/<pid>/status`` value in KiB (``VmRSS``, ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def memory_mib(pid: int | str = "self") -> dict[str, float]:
    """``{"rss", "pss", "uss"}`` in MiB from ``/proc/<pid>/smaps_rollup`` (USS: private
    clean + private dirty)."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        values[key] = int(rest.split()[0])
    uss = values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
    return {"rss": values["Rss"] / 1024, "pss": values["Pss"] / 1024, "uss": uss / 1024}


class Meter:
    """Time and memory of one step: RSS after minus before, peak minus before (MiB)."""

    def __enter__(self) -> Meter:
        self.rss_before = status_kib("VmRSS")
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        self.rss = (status_kib("VmRSS") - self.rss_before) / 1024
        self.peak = (status_kib("VmHWM") - self.rss_before) / 1024


# --- measurements (each in its own process) ------------------------------------------------
def measure_json(path: str) -> dict[str, Any]:
    with Meter() as meter, open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    return {"seconds": meter.seconds, "rss": meter.rss, "peak": meter.peak,
            "boxes": len(data["annotations"]), "images": len(data["images"])}


def measure_plugdet(path: str) -> dict[str, Any]:
    from core.data.datasets.coco import CocoDataset

    data = Path(path).parent
    with Meter() as meter:
        dataset = CocoDataset(ann_file=path, img_dir=str(data / "images"), check_images=False)
    records = dataset.records
    boxes = records.num_boxes + len(records.ignore_labels)
    return {"seconds": meter.seconds, "rss": meter.rss, "peak": meter.peak,
            "nbytes": records.nbytes, "boxes": boxes, "images": len(dataset)}


def measure_pycocotools(path: str) -> dict[str, Any]:
    import contextlib
    import io

    from pycocotools.coco import COCO

    with Meter() as meter, contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(path)
    return {"seconds": meter.seconds, "rss": meter.rss, "peak": meter.peak,
            "boxes": len(coco.anns), "images": len(coco.imgs)}


def measure_eval(path: str, backend: str) -> dict[str, Any]:
    import contextlib
    import io

    from core.evaluation.coco_metric import coco_api

    coco_class, eval_class = coco_api(backend)  # type: ignore[arg-type]
    detections = json.loads((Path(path).parent / "detections.json").read_text())
    options = {} if backend == "pycocotools" else {"print_function": print}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = coco_class(path)
        with Meter() as meter:
            evaluator = eval_class(coco_gt, coco_gt.loadRes(detections), "bbox", **options)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
    return {"seconds": meter.seconds, "rss": meter.rss, "peak": meter.peak,
            "detections": len(detections), "stats": [float(v) for v in evaluator.stats]}


def measure_loader(path: str, batch_size: int, num_images: int) -> dict[str, Any]:
    import torch

    from core.data.loader import build_dataloader

    data = Path(path).parent
    cfg = {
        "batch_size": batch_size, "num_workers": 2, "shuffle": True,
        "dataset": {
            "type": "CocoDataset", "ann_file": path, "img_dir": str(data / "images"),
            "check_images": False,
            "pipeline": [{"type": "LoadImage"}, {"type": "Resize", "scale": [160, 160]}],
        },
    }
    loader = build_dataloader(cfg, path="train_dataloader", seed=0)
    if 0 < num_images < len(loader.dataset):
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(loader.dataset, range(num_images)), batch_size=batch_size,
            shuffle=True, num_workers=2, collate_fn=loader.collate_fn,
            generator=torch.Generator().manual_seed(0))
    iterator = iter(loader)
    start = time.perf_counter()
    batches = len(loader)
    first = next(iterator)
    pids = [worker.pid for worker in iterator._workers]  # type: ignore[attr-defined]
    at_start = {"main": memory_mib(), **{f"worker{i}": memory_mib(p) for i, p in enumerate(pids)}}
    images = len(first.samples)
    for _ in range(batches - 1):
        batch = next(iterator)
        images += len(batch.samples)
    seconds = time.perf_counter() - start
    at_end = {"main": memory_mib(), **{f"worker{i}": memory_mib(p) for i, p in enumerate(pids)}}
    return {"seconds": seconds, "images": images, "batches": batches,
            "dataset_images": len(loader.dataset), "start": at_start, "end": at_end}


MEASURES = {"json": measure_json, "plugdet": measure_plugdet, "pycocotools": measure_pycocotools,
            "eval": measure_eval, "loader": measure_loader}


def run_measure(kind: str, *args: object, cache_dir: Path | None = None) -> dict[str, Any]:
    """Run ``MEASURES[kind](*args)`` in a fresh interpreter and return its result."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["PLUGDET_CACHE_DIR"] = str(cache_dir)
    command = [sys.executable, __file__, "--measure", kind, *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT,
                          check=False)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    raise RuntimeError(f"{kind} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")


def measure_main(kind: str, args: list[str]) -> None:
    function = MEASURES[kind]
    converted = [int(a) if a.isdigit() else a for a in args]
    print(RESULT + json.dumps(function(*converted)), flush=True)


# --- data ----------------------------------------------------------------------------------
def ensure_data(folder: Path, num_images: int, det_images: int) -> Path:
    """``folder/instances.json`` made by ``coco_like.py`` (once; in its own process)."""
    stamp = folder / "made.json"
    wanted = {"images": num_images, "det_images": det_images, "version": DATA_VERSION}
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return folder / "instances.json"
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "bench" / "coco_like.py"), "--images",
                    str(num_images), "--out", str(folder), "--det-images", str(det_images)],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    stamp.write_text(json.dumps(wanted))
    print(f"  made {folder} in {time.perf_counter() - start:.0f} s", flush=True)
    return folder / "instances.json"


# --- report --------------------------------------------------------------------------------
def size_line(num_images: int, path: Path) -> str:
    loaded = run_measure("json", path)
    with tempfile.TemporaryDirectory(prefix="plugdet_index_") as cache:
        first = run_measure("plugdet", path, cache_dir=Path(cache))
        cached = run_measure("plugdet", path, cache_dir=Path(cache))
    coco = run_measure("pycocotools", path)
    return (f"{num_images:>7} {loaded['boxes']:>7} {path.stat().st_size / MIB:>7.0f} "
            f"{loaded['seconds']:>6.1f} {loaded['peak']:>6.0f} | "
            f"{first['seconds']:>6.1f} {first['rss']:>6.0f} {first['peak']:>6.0f} | "
            f"{cached['seconds']:>6.2f} {cached['rss']:>5.0f} | "
            f"{first['nbytes'] / first['boxes']:>5.1f} | "
            f"{coco['seconds']:>6.1f} {coco['rss']:>6.0f} | "
            f"{coco['seconds'] / first['seconds']:>5.1f}x {coco['rss'] / first['rss']:>5.1f}x "
            f"{coco['seconds'] / cached['seconds']:>6.0f}x")


SIZE_HEADER = (
    f"{'':>23} {'json.load':>13} | {'plugdet index, first':>20} | {'cached':>12} | "
    f"{'index':>5} | {'pycocotools':>13} | pycocotools / plugdet\n"
    f"{'images':>7} {'boxes':>7} {'MiB':>7} {'s':>6} {'peak':>6} | {'s':>6} {'RSS':>6} "
    f"{'peak':>6} | {'s':>6} {'RSS':>5} | {'B/box':>5} | {'s':>6} {'RSS':>6} | "
    f"{'time':>6} {'RSS':>6} {'cached':>7}"
)


def memory_text(values: dict[str, float]) -> str:
    return f"RSS {values['rss']:6.0f}  PSS {values['pss']:6.0f}  USS {values['uss']:6.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--data", type=Path,
                        default=Path(tempfile.gettempdir()) / "plugdet_coco_like")
    parser.add_argument("--eval-images", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--loader-images", type=int, default=0,
                        help="loader epoch over the first N images only (0: all)")
    parser.add_argument("--loader-index", choices=("cached", "parsed"), default="cached",
                        help="the loader's dataset restores the index from a cache written "
                        "beforehand in another process (cached), or parses the file itself")
    parser.add_argument("--skip-loader", action="store_true")
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure_main(args.measure[0], args.measure[1:])
        return

    print(cpu_description())
    print(f"start: {load_average()}; python {platform.python_version()}", flush=True)
    paths = {n: ensure_data(args.data / f"images_{n}", n, 0) for n in sorted(args.sizes)}
    eval_path = ensure_data(args.data / f"eval_{args.eval_images}", args.eval_images,
                            args.eval_images)
    print("\nAnnotation files (memory in MiB: RSS after the step minus before; peak: VmHWM "
          "minus the same start)")
    print(SIZE_HEADER)
    for num_images, path in paths.items():
        print(size_line(num_images, path), flush=True)

    results = {backend: run_measure("eval", eval_path, backend)
               for backend in ("pycocotools", "faster_coco_eval")}
    reference, fast = results["pycocotools"], results["faster_coco_eval"]
    difference = max(abs(a - b) for a, b in zip(reference["stats"], fast["stats"], strict=True))
    print(f"\nCOCO box evaluation, {args.eval_images} images x 100 detections "
          f"({reference['detections']} results; loadRes + evaluate + accumulate + summarize):")
    for backend, result in results.items():
        print(f"  {backend:<17} {result['seconds']:7.1f} s  peak +{result['peak']:.0f} MiB")
    print(f"  pycocotools / faster_coco_eval: {reference['seconds'] / fast['seconds']:.1f}x; "
          f"mAP {reference['stats'][0]:.4f}; largest |difference| of the 12 stats "
          f"{difference:.1e}")

    if not args.skip_loader:
        largest = max(paths)
        with tempfile.TemporaryDirectory(prefix="plugdet_index_") as cache:
            if args.loader_index == "cached":
                run_measure("plugdet", paths[largest], cache_dir=Path(cache))
            loader = run_measure("loader", paths[largest], args.batch_size, args.loader_images,
                                 cache_dir=Path(cache))
        print(f"\nLoader, num_workers=2, batch {args.batch_size}, pipeline LoadImage + Resize "
              f"160, index {args.loader_index}: {loader['images']} images of the "
              f"{largest}-image index "
              f"({loader['batches']} batches) in {loader['seconds']:.0f} s "
              f"({loader['images'] / loader['seconds']:.0f} images/s); MiB")
        for name in loader["start"]:
            print(f"  {name:<8} start {memory_text(loader['start'][name])}   "
                  f"end {memory_text(loader['end'][name])}")
    print(f"\nend: {load_average()}")


if __name__ == "__main__":
    main()
