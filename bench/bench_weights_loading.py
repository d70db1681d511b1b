"""Time and memory of ``load_from`` for each checkpoint format, each in a fresh process.

Files (made here, no network; random weights in each framework's own layout and format):

* ``torchvision``: ``retinanet_resnet50_fpn`` / ``_v2`` and ``fasterrcnn_resnet50_fpn`` /
  ``_v2`` built by torchvision (``weights=None``), ``torch.save(state_dict)`` under the name of
  torchvision's release file (so that their COCO classes are known, as for a download);
* ``ultralytics`` (YOLOv8-s) and ``yolov5`` (YOLOv5-s): the model pickled as those frameworks
  pickle it, in half precision, under their module paths, with the keys and shapes of
  ``plugins/yolo/tests/zoo_keys/`` (neither framework is needed);
* ``mmdet``: MMDetection RetinaNet R50 and Faster R-CNN R50 files as their converters' tests
  make them (``mmdet_keys/`` of those plugins' tests), saved as MMEngine saves them;
* ``safetensors``: the torchvision RetinaNet file converted by ``plugdet weights convert``
  (:func:`core.tools.weights.convert`).

Each source is measured in its own process: the model of its converter's config is built
first, then ``read_checkpoint`` and the conversion with the fit to the 80 COCO classes
(``convert_checkpoint`` + ``fit_to_model``, what ``load_from`` does) are timed. Memory: the
process's resident set after building the model, its peak (``ru_maxrss``) at the end, and the
difference (what loading the file added at its peak). With ``--repeat N`` each source runs
in N fresh processes; the least times and the largest peaks are shown.

    python bench/bench_weights_loading.py [--repeat 1] [--threads 2] [--source NAME ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
#: source name -> the registered converter whose config builds the model.
SOURCES = {
    "torchvision retinanet_resnet50_fpn": "torchvision/retinanet_resnet50_fpn",
    "torchvision retinanet_resnet50_fpn_v2": "torchvision/retinanet_resnet50_fpn_v2",
    "torchvision fasterrcnn_resnet50_fpn": "torchvision/fasterrcnn_resnet50_fpn",
    "torchvision fasterrcnn_resnet50_fpn_v2": "torchvision/fasterrcnn_resnet50_fpn_v2",
    "ultralytics yolov8s.pt": "ultralytics/yolov8s",
    "yolov5 yolov5s.pt": "yolov5/yolov5s",
    "mmdet retinanet_r50_fpn": "mmdet/retinanet_r50_fpn",
    "mmdet faster_rcnn_r50_fpn": "mmdet/faster_rcnn_r50_fpn",
    "safetensors (converted retinanet)": "torchvision/retinanet_resnet50_fpn",
}
#: Sources fitted to the file's own classes (the model built with as many): torchvision's
#: Faster R-CNN ``fc_reg`` holds class-major blocks of 4 rows, which the fit cannot yet
#: narrow to other classes.
RESULT = "RESULT "


def cpu_name() -> str:
    """The CPU's ``model name`` from ``/proc/cpuinfo`` (else what ``platform`` says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def test_module(relative: str, name: str) -> ModuleType:
    """A test module of the repository, imported from its file under a unique name."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- the files


def torchvision_file(directory: Path, name: str) -> Path:
    """torchvision's model ``name`` (random init) saved as its release file is named."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None, weights_backbone=None)
    url = torchvision.models.get_model_weights(name).DEFAULT.url
    path = directory / Path(url).name
    torch.save(model.state_dict(), path)
    return path


def pickled_peer_file(path: Path, module: str, state: dict[str, torch.Tensor],
                      yaml: dict[str, Any], contents: dict[str, Any]) -> Path:
    """``state`` as a pickled ``DetectionModel`` tree of ``module`` (fp16), saved in the file
    dict ``contents`` under ``model`` (as ultralytics and YOLOv5 save it)."""
    peer_files = test_module("tests/weights/peer_files.py", "bench_peer_files")

    class Node(nn.Module):
        """A layer of the peer's model: its tensors and its children."""

    class DetectionModel(nn.Module):
        """The model object the peers pickle."""

    model = DetectionModel()
    for key, value in state.items():
        *parents, leaf = key.split(".")
        layer: nn.Module = model
        for part in parents:
            if part not in layer._modules:
                layer.add_module(part, Node())
            layer = layer._modules[part]  # type: ignore[assignment]
        if value.is_floating_point() and not leaf.startswith("running_") and leaf != "anchors":
            layer.register_parameter(leaf, nn.Parameter(value, requires_grad=False))
        else:
            layer.register_buffer(leaf, value)
    model.yaml = yaml
    model.names = dict(enumerate(coco_classes()))
    model.stride = torch.tensor([8.0, 16.0, 32.0])
    model.half()
    with peer_files.modules_named(module, DetectionModel=DetectionModel, Node=Node):
        torch.save({**contents, "model": model}, path)
    return path


def coco_classes() -> tuple[str, ...]:
    from plugdet_retinanet.key_maps import COCO_CLASSES

    return tuple(COCO_CLASSES)


def ultralytics_file(directory: Path) -> Path:
    keys = test_module("plugins/yolo/tests/test_zoo_keys.py", "bench_yolo_zoo_keys")
    contents = {"ema": None, "optimizer": None, "updates": None, "epoch": -1,
                "date": "2026-01-01", "version": "8.4.190", "license": "AGPL-3.0"}
    return pickled_peer_file(directory / "yolov8s.pt", "ultralytics.nn.tasks",
                             keys.peer_state("ultralytics/yolov8s"),
                             {"yaml_file": "yolov8s.yaml", "nc": 80, "scale": "s"}, contents)


def yolov5_file(directory: Path) -> Path:
    keys = test_module("plugins/yolo/tests/test_zoo_keys.py", "bench_yolo_zoo_keys")
    anchors = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
    contents = {"epoch": -1, "best_fitness": None, "ema": None, "updates": None,
                "optimizer": None, "wandb_id": None, "date": None}
    return pickled_peer_file(directory / "yolov5s.pt", "models.yolo",
                             keys.peer_state("yolov5/yolov5s"),
                             {"nc": 80, "depth_multiple": 0.33, "width_multiple": 0.5,
                              "anchors": anchors}, contents)


def mmdet_retinanet_file(directory: Path) -> Path:
    tests = test_module("plugins/retinanet/tests/test_zoo_mmdet.py", "bench_retinanet_mmdet")
    return tests.mmdet_file(directory / "retinanet_r50_fpn_1x_coco.pth",
                            tests.key_shapes("retinanet_r50_fpn_1x_coco"), "RetinaNet")


def mmdet_faster_rcnn_file(directory: Path) -> Path:
    tests = test_module("plugins/faster_rcnn/tests/test_zoo_mmdet.py", "bench_frcnn_mmdet")
    return tests.mmdet_file(directory / "faster-rcnn_r50_fpn_1x_coco.pth", tests.key_shapes())


def safetensors_file(directory: Path, config: str) -> Path:
    from core.tools.weights import convert

    (directory / "source").mkdir()
    source = torchvision_file(directory / "source", "retinanet_resnet50_fpn")
    out = directory / "retinanet_r50_fpn.safetensors"
    convert(str(source), str(ROOT / config), out, [])
    return out


def file_makers(config_of: Callable[[str], str]) -> dict[str, Callable[[Path], Path]]:
    """How each source's file is made, by source name."""
    def tv(name: str) -> Callable[[Path], Path]:
        return lambda directory: torchvision_file(directory, name)

    return {
        **{source: tv(source.split()[1]) for source in SOURCES if source.startswith("torchvision")},
        "ultralytics yolov8s.pt": ultralytics_file,
        "yolov5 yolov5s.pt": yolov5_file,
        "mmdet retinanet_r50_fpn": mmdet_retinanet_file,
        "mmdet faster_rcnn_r50_fpn": mmdet_faster_rcnn_file,
        "safetensors (converted retinanet)": lambda directory: safetensors_file(
            directory, config_of("torchvision/retinanet_resnet50_fpn")),
    }


# ----------------------------------------------------------------------- the measurement


def resident_bytes() -> int:
    """The process's resident set now."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def measure(path: str, converter_name: str, threads: int) -> dict[str, Any]:
    """In this (fresh) process: build the model of the converter's config, then read and fit
    the file to the 80 COCO classes; seconds of each step and resident memory in bytes."""
    from core.engine.full_config import load_full_config
    from core.models.backbones.pretrained import pretrained_weights_skipped
    from core.plugins import get_registries
    from core.weights.checkpoint import read_checkpoint
    from core.weights.fitting import fit_to_model
    from core.weights.loading import convert_checkpoint, weight_converters

    torch.set_num_threads(threads)
    config = dict(weight_converters())[converter_name].config
    cfg = load_full_config(str(ROOT / config))
    with pretrained_weights_skipped():
        model = get_registries().build("detector", cfg["model"], path="model")
    after_model = resident_bytes()
    start = time.perf_counter()
    checkpoint = read_checkpoint(path)
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    converted, origin = convert_checkpoint(checkpoint, model)
    report = fit_to_model(converted, model, coco_classes(), {}, checkpoint.path, origin)
    fit_s = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {"read_s": read_s, "fit_s": fit_s, "model_rss": after_model, "peak_rss": peak,
            "origin": origin, "loaded": report.loaded, "kept": len(report.kept)}


def measure_in_subprocess(path: Path, converter_name: str, threads: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--measure", str(path), converter_name,
                          "--threads", str(threads)],
                         check=False, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"measuring {path} failed:\n{out.stderr}")
    line = next(line for line in out.stdout.splitlines() if line.startswith(RESULT))
    result: dict[str, Any] = json.loads(line[len(RESULT):])
    return result


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The least times and the largest memory of repeated runs."""
    merged = dict(runs[0])
    for key in ("read_s", "fit_s"):
        merged[key] = min(run[key] for run in runs)
    for key in ("model_rss", "peak_rss"):
        merged[key] = max(run[key] for run in runs)
    merged["added"] = max(run["peak_rss"] - run["model_rss"] for run in runs)
    return merged


def table(rows: list[tuple[str, int, dict[str, Any]]]) -> str:
    """One markdown row per source."""
    lines = ["| source | file MiB | read s | convert+fit s | RSS after model MiB | "
             "peak RSS MiB | peak - model MiB | converter | tensors (classes kept) |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for source, size, r in rows:
        lines.append(f"| {source} | {size / MIB:.1f} | {r['read_s']:.2f} | {r['fit_s']:.2f} | "
                     f"{r['model_rss'] / MIB:.0f} | {r['peak_rss'] / MIB:.0f} | "
                     f"{r['added'] / MIB:.0f} | {r['origin']} | {r['loaded']} ({r['kept']}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1,
                        help="fresh processes per source (least times, largest memory)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--source", nargs="+", choices=list(SOURCES), default=list(SOURCES))
    parser.add_argument("--measure", nargs=2, metavar=("FILE", "CONVERTER"),
                        help=argparse.SUPPRESS)  # the child process of one measurement
    args = parser.parse_args(argv)
    if args.measure:
        print(RESULT + json.dumps(measure(*args.measure, args.threads)))
        return

    from core.weights.loading import weight_converters

    configs = {name: converter.config for name, converter in weight_converters()}
    makers = file_makers(configs.__getitem__)
    print(f"torch {torch.__version__}, {args.threads} threads, {cpu_name()}, "
          f"{load_average()} (start); best of {args.repeat} fresh process(es) per source")
    rows = []
    with tempfile.TemporaryDirectory(prefix="plugdet_weights_bench_") as scratch:
        for number, source in enumerate(args.source):
            directory = Path(scratch) / str(number)
            directory.mkdir()
            path = makers[source](directory)
            runs = [measure_in_subprocess(path, SOURCES[source], args.threads)
                    for _ in range(args.repeat)]
            rows.append((source, path.stat().st_size, best(runs)))
            print(f"  measured {source}", flush=True)
    print(table(rows))
    print(f"{load_average()} (end)")


if __name__ == "__main__":
    main()
