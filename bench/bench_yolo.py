"""Our YOLOv8 against ultralytics' on this CPU, each framework in its own process.

Measures (the best, i.e. least disturbed, of the repeats; ratio ours / ultralytics):

* ``train step``: forward, loss, backward and an SGD step of YOLOv8-n (80 classes) on one
  seeded batch of random images with random boxes (the same tensors for both);
* ``inference batch``: forward and NMS (score 0.001, IoU 0.7, at most 300 per image) of that
  batch in eval mode; ultralytics' also as its predictor runs the model on an x86 CPU
  (Conv+BN fused, channels-last);
* ``train epoch``: one epoch on the raccoon set in YOLO format (converted with
  ``python -m core.tools.voc2yolo``), data loading and augmentation included: ours with
  ``plugins/yolo/configs/yolov8_n_scratch_raccoon.toml`` (its multi-scale resize replaced by
  a letterbox to the image size for this measure), ultralytics with its own default
  recipe (mosaic) at the same image size and batch size (its ``workers`` is 0 on a CPU;
  ours loads in the main thread too, ``num_workers = 0``), epoch 2 of a 2-epoch run (epoch 1
  warms caches), the least of ``--epoch-rounds`` alternating runs (each run in a fresh work
  folder), and the ratio within each round with its median: the two runs of a round follow
  each other, so a slow spell of this shared machine moves both;
* precision: ours as the raccoon config sets it (``amp = "auto"``: bf16 autocast on a CPU
  with native bf16, and channels-last weights), in all three measures; ``--fp32`` measures
  ours in float32 (the same arithmetic as ultralytics, ours still in its config's memory
  format). Ultralytics trains in float32 on a CPU (its AMP is CUDA-only). Our process applies
  the engine's CPU settings (:mod:`core.engine.cpu_tuning`) as every plugdet run does;
* ``--profile``: where the time of epoch 2 goes, per phase (loading, augmenting and collating
  the batch; forward; targets and losses from the head's outputs; backward; optimizer step
  with the EMA update; the rest: hooks, logging), ours from a runner built in the worker,
  ultralytics' from its trainer's callbacks and its timed loss criterion; the share of
  convolutions in one profiled training step of each, and the floor: the ratio ours /
  ultralytics if our convolutions took as long as theirs and everything else took no time;
* ``accuracy`` (``--accuracy``): both trained from scratch on raccoon for the same epochs and
  image size; COCO-style mAP50 (101-point, IoU 0.5) of each on the val split.

Threads: ultralytics sets ``torch.set_num_threads(1)`` on a CPU when it selects the device;
its worker resets the thread count to ``--threads`` in an ``on_train_start`` callback (after
that selection) and for the step and inference measures; ours uses the same count.

    python bench/bench_yolo.py [--threads 2] [--imgsz 256] [--batch 8] [--accuracy]
        [--epochs 64] [--repeats 5] [--fp32] [--profile] [--raccoon ../shared/data/raccoon]

Run it in the ``bench-yolo`` tox env (``tox -e bench-yolo``), the only place ultralytics is
installed; it is never a dependency of plugdet.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conv_throughput import conv_seconds
from timing import best_seconds

REPO = Path(__file__).resolve().parent.parent
SPEED_CONFIG = REPO / "plugins/yolo/configs/yolov8_n_500e_coco.toml"
RACCOON_CONFIG = REPO / "plugins/yolo/configs/yolov8_n_scratch_raccoon.toml"
NUM_CLASSES = 80
SGD_LR = 1e-4  # small: weights barely move, so every step does comparable work
NMS = {"score": 0.001, "iou": 0.7, "max_per_img": 300}


# ---- shared input ----------------------------------------------------------------------


#: the phases of an epoch, in print order
PHASES = ("data", "forward", "targets+losses", "backward", "optimizer+ema", "rest")


class PhaseClock:
    """Seconds per timed call and of the iterations and the loader's gaps between them, in the
    epoch being counted (epoch 2 of 2)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.counting = False
        self._start = 0.0
        self._end: float | None = None

    def add(self, key: str, seconds: float) -> None:
        if self.counting:
            self.seconds[key] = self.seconds.get(key, 0.0) + seconds

    def timed(self, key: str, fn: Callable) -> Callable:
        def call(*args: object, **kwargs: object) -> object:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(key, time.perf_counter() - start)
        return call

    def new_epoch(self, counted: bool) -> None:
        self.counting, self._end = counted, None

    def iteration_start(self) -> None:
        self._start = time.perf_counter()
        if self._end is not None:
            self.add("loader", self._start - self._end)

    def iteration_end(self) -> None:
        self._end = time.perf_counter()
        self.add("iterations", self._end - self._start)

    def phases(self, backward_timed: bool) -> dict[str, float]:
        """:data:`PHASES` and ``epoch``; without ``backward_timed``, backward is what the
        iterations leave after the timed calls (it then includes the rest)."""
        get = self.seconds.get
        timed = get("preprocess", 0.0) + get("forward+loss", 0.0) + get("optimizer+ema", 0.0)
        left = get("iterations", 0.0) - timed - (get("backward", 0.0) if backward_timed else 0.0)
        result = {"data": get("loader", 0.0) + get("preprocess", 0.0),
                  "forward": get("forward+loss", 0.0) - get("targets+losses", 0.0),
                  "targets+losses": get("targets+losses", 0.0),
                  "backward": get("backward", 0.0) if backward_timed else left,
                  "optimizer+ema": get("optimizer+ema", 0.0),
                  "rest": left if backward_timed else 0.0}
        result["epoch"] = sum(result.values())
        return result


class TimedCallable:
    """A callable object (ultralytics' loss criterion) whose calls count as targets+losses;
    its attributes read through."""

    def __init__(self, wrapped: Any, clock: PhaseClock) -> None:
        self._call = clock.timed("targets+losses", wrapped.__call__)
        self._wrapped = wrapped

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


# ---- ultralytics side ------------------------------------------------------------------


def ultralytics_environment(config_dir: Path) -> None:
    """Offline settings; its dataset check looks for Arial.ttf in its config dir."""
    os.environ["YOLO_OFFLINE"] = "true"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    import matplotlib

    font = Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"
    for folder in (config_dir, config_dir / "Ultralytics"):
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(font, folder / "Arial.ttf")


def ultralytics_speed(args: argparse.Namespace) -> dict[str, float]:
    import torch
    from random_boxes import random_batch
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils.nms import non_max_suppression

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = DetectionModel("yolov8n.yaml", nc=NUM_CLASSES, verbose=False)
    model.args = get_cfg()
    images, targets = random_batch(args.batch, args.imgsz, NUM_CLASSES)
    size = float(args.imgsz)
    batch_idx, cls, bboxes = [], [], []
    for index, (boxes, labels) in enumerate(targets):
        xywh = torch.cat([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], 1)
        bboxes.append(xywh / size)
        cls.append(labels[:, None].float())
        batch_idx.append(torch.full((len(labels),), float(index)))
    batch = {"img": images, "batch_idx": torch.cat(batch_idx), "cls": torch.cat(cls),
             "bboxes": torch.cat(bboxes)}
    optimizer = torch.optim.SGD(model.parameters(), lr=SGD_LR, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss, _ = model.loss(batch)
        loss.sum().backward()
        optimizer.step()

    def infer() -> None:
        with torch.no_grad():
            non_max_suppression(model(images), conf_thres=NMS["score"], iou_thres=NMS["iou"],
                                max_det=NMS["max_per_img"])

    model.train()
    train = best_seconds(step, args.warmup, args.repeats)
    profiled = conv_seconds(step) if args.profile else None
    model.eval()
    infer_raw = best_seconds(infer, args.warmup, args.repeats)
    params = sum(p.numel() for p in model.parameters())
    # as its predictor (AutoBackend) runs the model on an x86 CPU: Conv+BN fused, channels-last
    model.fuse(verbose=False)
    model.to(memory_format=torch.channels_last)
    return {"train_step": train, "infer_batch": infer_raw,
            "infer_predictor": best_seconds(infer, args.warmup, args.repeats), "params": params,
            "threads": torch.get_num_threads(), "profiled_step": profiled}


def ultralytics_train(args: argparse.Namespace, epochs: int) -> dict[str, object]:
    import torch
    from ultralytics import YOLO

    epoch_times: list[float] = []
    starts: list[float] = []
    threads: list[int] = []

    def on_train_start(trainer: object) -> None:
        torch.set_num_threads(args.threads)
        threads.append(torch.get_num_threads())

    def on_epoch_start(trainer: object) -> None:
        starts.append(time.perf_counter())

    def on_epoch_end(trainer: object) -> None:
        epoch_times.append(time.perf_counter() - starts[-1])

    model = YOLO("yolov8n.yaml")
    model.add_callback("on_train_start", on_train_start)
    model.add_callback("on_train_epoch_start", on_epoch_start)
    model.add_callback("on_train_epoch_end", on_epoch_end)
    project = Path(args.scratch) / "ultralytics_runs"
    model.train(data=args.yolo_data, epochs=epochs, imgsz=args.imgsz,
                batch=args.batch, workers=0, device="cpu", amp=False, plots=False,
                val=False, seed=0, deterministic=True, project=str(project), name="run",
                exist_ok=True, verbose=False)
    metrics = model.trainer.metrics
    return {"epoch_times": epoch_times, "map50": float(metrics.get("metrics/mAP50(B)", -1.0)),
            "threads": threads[-1] if threads else -1}


def ultralytics_phases(args: argparse.Namespace) -> dict[str, float]:
    """Phases of epoch 2 of a 2-epoch run (as the epoch measure), from the trainer's batch
    callbacks and its timed ``preprocess_batch`` (data), ``model.loss`` and
    ``optimizer_step`` (with the EMA update); backward includes its per-batch logging."""
    import torch
    from ultralytics import YOLO

    clock = PhaseClock()

    def on_train_start(trainer: Any) -> None:
        torch.set_num_threads(args.threads)
        trainer.optimizer_step = clock.timed("optimizer+ema", trainer.optimizer_step)
        trainer.preprocess_batch = clock.timed("preprocess", trainer.preprocess_batch)
        trainer.model.loss = clock.timed("forward+loss", trainer.model.loss)
        init_criterion = trainer.model.init_criterion
        trainer.model.init_criterion = lambda: TimedCallable(init_criterion(), clock)
        if getattr(trainer.model, "criterion", None) is not None:
            trainer.model.criterion = TimedCallable(trainer.model.criterion, clock)

    model = YOLO("yolov8n.yaml")
    for event, callback in (
            ("on_train_start", on_train_start),
            ("on_train_epoch_start", lambda trainer: clock.new_epoch(trainer.epoch == 1)),
            ("on_train_batch_start", lambda trainer: clock.iteration_start()),
            ("on_train_batch_end", lambda trainer: clock.iteration_end())):
        model.add_callback(event, callback)
    model.train(data=args.yolo_data, epochs=2, imgsz=args.imgsz, batch=args.batch, workers=0,
                device="cpu", amp=False, plots=False, val=False, seed=0, deterministic=True,
                project=str(Path(args.scratch) / "ultralytics_phases"), name="run",
                exist_ok=True, verbose=False)
    return clock.phases(backward_timed=False)


# ---- our side --------------------------------------------------------------------------


def ours_speed(args: argparse.Namespace) -> dict[str, float]:
    import torch
    from random_boxes import random_batch

    from core.engine.full_config import load_full_config
    from core.plugins import get_registries
    from core.structures import DetBatch, DetSample, Instances

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    overrides = [f"model.head.num_classes={NUM_CLASSES}",
                 f"model.head.postprocess.score_thr={NMS['score']}",
                 f"model.head.postprocess.iou_threshold={NMS['iou']}",
                 f"model.head.postprocess.max_per_img={NMS['max_per_img']}"]
    amp, channels_last = ours_precision(args)
    overrides.append(f"model.channels_last={str(channels_last).lower()}")
    cfg = load_full_config(str(SPEED_CONFIG), overrides=overrides + list(args.ours_set))
    model = get_registries().build("detector", cfg["model"], path="model")
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp)
    images, targets = random_batch(args.batch, args.imgsz, NUM_CLASSES)
    shape = (args.imgsz, args.imgsz)
    samples = [DetSample(img_shape=shape, ori_shape=shape, pad_shape=shape,
                         gt=Instances(boxes, labels)) for boxes, labels in targets]
    batch = DetBatch(images, samples)
    optimizer = torch.optim.SGD(model.parameters(), lr=SGD_LR, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            losses = model.loss(batch)
        sum(v for v in losses.values() if v.requires_grad).backward()
        optimizer.step()

    def infer() -> None:
        with torch.no_grad(), autocast:
            model.predict(batch)

    model.train()
    train = best_seconds(step, args.warmup, args.repeats)
    profiled = conv_seconds(step) if args.profile else None
    model.eval()
    return {"train_step": train, "infer_batch": best_seconds(infer, args.warmup, args.repeats),
            "params": sum(p.numel() for p in model.parameters()),
            "threads": torch.get_num_threads(), "precision": precision_name(amp, channels_last),
            "profiled_step": profiled}


def ours_precision(args: argparse.Namespace) -> tuple[bool, bool]:
    """``(amp, channels_last)`` of our raccoon config (amp false with ``--fp32``); the step
    and inference measures use them too, so all three measure what the config trains with."""
    import torch

    from core.engine.full_config import load_full_config
    from core.engine.run_config import resolve_amp

    cfg = load_full_config(str(RACCOON_CONFIG))
    amp = resolve_amp(cfg.get("amp", False), torch.device("cpu")) is not None
    return amp and not args.fp32, bool(cfg["model"].get("channels_last", False))


def precision_name(amp: bool, channels_last: bool) -> str:
    return ("bf16 autocast" if amp else "float32") + (", channels-last" if channels_last else "")


def yolo_format_config(args: argparse.Namespace, work_dir: Path, fixed_size: bool,
                       epochs: int) -> Path:
    """Our raccoon config with its train/val/test datasets read as ``YoloDataset`` from the
    converted set, trained for ``epochs`` (by-epoch schedules ending with the config's last
    epoch end with this one), written as a TOML file in ``work_dir``. With ``fixed_size``
    the training images are letterboxed to ``imgsz`` (ultralytics' training size) instead
    of the config's multi-scale resize, so both frameworks train an epoch on the same image
    size."""
    import tomli_w

    from core.config import read_config

    cfg = read_config(RACCOON_CONFIG)
    for scheduler in cfg.get("param_schedulers", []):
        if scheduler.get("by_epoch", True) and scheduler.get("end") == cfg["train"]["max_epochs"]:
            scheduler["end"] = epochs
    cfg["train"]["max_epochs"] = epochs
    for loader, split in (("train_dataloader", "train"), ("val_dataloader", "val"),
                          ("test_dataloader", "val")):
        pipeline = cfg[loader]["dataset"]["pipeline"]
        if fixed_size and loader == "train_dataloader":
            pipeline = [{"type": "LetterResize", "scale": [args.imgsz, args.imgsz]}
                        if step["type"] in ("RandomResize", "Resize") else step
                        for step in pipeline if step["type"] != "Pad"]
        cfg[loader]["dataset"] = {"type": "YoloDataset", "data_yaml": args.yolo_data,
                                  "split": split, "pipeline": pipeline}
    cfg["data"] = {key: value for key, value in cfg.get("data", {}).items() if key != "root"}
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / "yolov8_n_scratch_raccoon_yolo_format.toml"
    path.write_text(tomli_w.dumps(cfg))
    return path


def ours_train(args: argparse.Namespace, epochs: int) -> dict[str, object]:
    """Train with ``core.run`` and read the per-iteration times (data included) and the last
    COCO mAP50 from the run's scalars."""
    # a folder of its own per run: a later round must not read an earlier round's scalars
    work_dir = Path(tempfile.mkdtemp(prefix=f"ours_{epochs}_", dir=args.scratch))
    config = yolo_format_config(args, work_dir, fixed_size=epochs < 3, epochs=epochs)
    command = [sys.executable, "-m", "core.run", str(config), "--work-dir", str(work_dir),
               "--set", f"train_dataloader.batch_size={args.batch}",
               "--set", "train_dataloader.num_workers=0"]
    if args.fp32:
        command += ["--set", "amp=false"]
    if epochs < 3:  # the epoch measure: no validation, no test
        command += ["--set", f"train.val_interval={epochs + 1}", "--set",
                    "train.test_at_end=false", "--set", "train.test_tta=false"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - start
    (scalars,) = work_dir.glob("*/vis_data/scalars.json")
    rows = [json.loads(line) for line in scalars.read_text().splitlines()]
    last_step = max(row["step"] for row in rows if "train/time" in row)
    iters_per_epoch = last_step // epochs
    epoch_times = [0.0] * epochs
    curve: list[tuple[float, float]] = []  # (training seconds so far, mAP50)
    trained, previous = 0.0, 0
    for row in rows:
        if "train/time" in row:  # the mean time of the iterations since the previous row
            window = row["step"] - previous
            epoch_times[min((row["step"] - 1) // iters_per_epoch, epochs - 1)] += (
                row["train/time"] * window)
            trained += row["train/time"] * window
            previous = row["step"]
        if "val/coco/bbox_mAP_50" in row:
            curve.append((trained, row["val/coco/bbox_mAP_50"]))
    tests = [row["test/coco/bbox_mAP_50"] for row in rows if "test/coco/bbox_mAP_50" in row]
    return {"epoch_times": epoch_times, "map50": curve[-1][1] if curve else -1.0,
            "curve": curve, "threads": args.threads, "test_map50": tests[-1] if tests else None,
            "wall": wall}


def ours_phases(args: argparse.Namespace) -> dict[str, float]:
    """Phases of epoch 2 of a 2-epoch run of the epoch measure's config, from a runner built
    here with its loader, forward, backward, optimizer step and EMA hook timed."""
    import torch

    from core.engine.full_config import load_full_config
    from core.engine.runner import Runner

    torch.set_num_threads(args.threads)
    work_dir = Path(args.scratch) / "ours_phases"
    config = yolo_format_config(args, work_dir, fixed_size=True, epochs=2)
    overrides = [f"train_dataloader.batch_size={args.batch}", "train_dataloader.num_workers=0",
                 "train.val_interval=3", "train.test_at_end=false", "train.test_tta=false"]
    overrides += ["amp=false"] if args.fp32 else []
    cfg = load_full_config(str(config), overrides=overrides, counts_from_data=True)
    runner = Runner.from_config(cfg, work_dir=str(work_dir / "run"))
    clock = PhaseClock()
    assert runner.train_step is not None and runner.optim_wrapper is not None
    runner.train_step.forward = clock.timed("forward+loss", runner.train_step.forward)
    head = runner.model.head
    head.loss_by_feat = clock.timed("targets+losses", head.loss_by_feat)
    runner.optim_wrapper.backward = clock.timed("backward", runner.optim_wrapper.backward)
    runner.optim_wrapper.step = clock.timed("optimizer+ema", runner.optim_wrapper.step)
    call_hook, train_iter = runner.call_hook, runner._train_iter

    def hook(event: str, *hook_args: object) -> None:
        if event == "before_train_epoch":
            clock.new_epoch(runner.epoch == 1)
        if event == "after_train_iter":  # the EMA update
            clock.timed("optimizer+ema", call_hook)(event, *hook_args)
        else:
            call_hook(event, *hook_args)

    def iteration(*iter_args: object) -> None:
        clock.iteration_start()
        train_iter(*iter_args)
        clock.iteration_end()

    runner.call_hook, runner._train_iter = hook, iteration
    runner.train()
    return clock.phases(backward_timed=True)


def print_profile(args: argparse.Namespace, speed: dict[str, dict]) -> None:
    """Phases of a training epoch and convolution shares of a step, ours beside
    ultralytics'."""
    phases = {side: run_worker(args, side, "phases") for side in ("ours", "ultralytics")}
    print("epoch 2 by phase (seconds, share of the epoch):")
    for side, result in phases.items():
        cells = "  ".join(f"{phase} {result[phase]:.2f} ({result[phase] / result['epoch']:.0%})"
                          for phase in PHASES)
        print(f"  {side:12s} {cells}  epoch {result['epoch']:.2f}")
    print("  (ultralytics' backward includes its per-batch logging: it is what its batch "
          "callbacks leave after the timed calls)")
    for side, result in speed.items():
        if result.get("profiled_step"):
            conv, total = result["profiled_step"]  # seconds: read the share (profiler overhead)
            print(f"  {side:12s} profiled train step: convolutions {conv:.3f} s of "
                  f"{total:.3f} s ({conv / total:.0%})")
    if speed["ultralytics"].get("profiled_step"):
        # ours with ultralytics' convolution time and everything else free: its share
        conv, total = speed["ultralytics"]["profiled_step"]
        print(f"  floor ratio for a train step with the same convolutions: {conv / total:.2f}")


# ---- orchestration ---------------------------------------------------------------------


def worker(args: argparse.Namespace) -> None:
    if args.side == "ultralytics":
        ultralytics_environment(Path(args.scratch) / "ultralytics_config")
        speed, train, phases = ultralytics_speed, ultralytics_train, ultralytics_phases
    else:
        from core.engine.cpu_tuning import apply_cpu_settings

        apply_cpu_settings(flush_denormal=True)  # what every plugdet run does first
        speed, train, phases = ours_speed, ours_train, ours_phases
    if args.measure == "speed":
        result = speed(args)
    elif args.measure == "phases":
        result = phases(args)
    else:
        result = train(args, 2 if args.measure == "epoch" else args.epochs)
    print("RESULT " + json.dumps(result))


def run_worker(args: argparse.Namespace, side: str, measure: str) -> dict:
    command = [sys.executable, __file__, "--worker", "--side", side, "--measure", measure,
               "--threads", str(args.threads), "--imgsz", str(args.imgsz), "--batch",
               str(args.batch), "--epochs", str(args.epochs), "--repeats", str(args.repeats),
               "--warmup", str(args.warmup), "--scratch", args.scratch, "--yolo-data",
               args.yolo_data] + [f"--ours-set={item}" for item in args.ours_set]
    command += ["--fp32"] if args.fp32 else []
    command += ["--profile"] if args.profile else []
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)
    line = next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def convert_raccoon(raccoon: Path, scratch: Path) -> Path:
    """The raccoon set in YOLO format under ``scratch``; returns its dataset YAML."""
    target = scratch / "raccoon_yolo"
    subprocess.run([sys.executable, "-m", "core.tools.voc2yolo", str(raccoon), "--out",
                    str(target), "--split", "train=train.txt", "--split", "val=val.txt",
                    "--ann-dir", "annotations", "--img-dir", "images", "--link"],
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return target / "raccoon.yaml"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--imgsz", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternating rounds of the speed processes (best kept)")
    parser.add_argument("--epoch-rounds", type=int, default=2,
                        help="alternating rounds of the epoch measure (best kept)")
    parser.add_argument("--accuracy", action="store_true")
    parser.add_argument("--ours-set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for our model in the step and inference measures")
    parser.add_argument("--fp32", action="store_true",
                        help="ours in float32 (its config's memory format), whatever the "
                             "config's amp says")
    parser.add_argument("--profile", action="store_true",
                        help="also the phases of a training epoch and the convolution share "
                             "of a training step, ours beside ultralytics'")
    parser.add_argument("--raccoon", default=str(REPO.parent / "shared/data/raccoon"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=["ours", "ultralytics"], help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=["speed", "epoch", "accuracy", "phases"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    parser.add_argument("--yolo-data", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory(prefix="bench_yolo_") as scratch:
        args.scratch = scratch
        args.yolo_data = str(convert_raccoon(Path(args.raccoon), Path(scratch)))
        print(f"YOLOv8-n, {args.imgsz}x{args.imgsz}, batch {args.batch}, {args.threads} "
              f"threads each; {load()}")
        speed: dict[str, dict] = {}
        for _ in range(args.rounds):
            for side in ("ours", "ultralytics"):
                result = run_worker(args, side, "speed")
                best = speed.setdefault(side, result)
                for key in ("train_step", "infer_batch", "infer_predictor"):
                    if key in result:
                        best[key] = min(best[key], result[key])
        for side, result in speed.items():
            print(f"{side:12s} params {result['params'] / 1e6:.3f} M  threads "
                  f"{result['threads']}  train step {result['train_step']:.3f} s  "
                  f"inference batch {result['infer_batch']:.3f} s  "
                  f"({result.get('precision', 'float32; AMP is CUDA-only in ultralytics')})")
        predictor = speed["ultralytics"]["infer_predictor"]
        print(f"ultralytics  inference batch as its predictor runs the model (Conv+BN fused, "
              f"channels-last): {predictor:.3f} s; ratio ours/that: "
              f"{speed['ours']['infer_batch'] / predictor:.3f}")
        rounds: dict[str, list[float]] = {"ours": [], "ultralytics": []}  # epoch 2, seconds
        threads: dict[str, int] = {}
        for _ in range(args.epoch_rounds):  # alternating; the least disturbed epoch kept
            for side in rounds:
                result = run_worker(args, side, "epoch")
                rounds[side].append(result["epoch_times"][-1])
                threads[side] = result["threads"]
        for side, seconds in rounds.items():
            print(f"{side:12s} raccoon epoch {min(seconds):.2f} s (threads {threads[side]}); "
                  "each round: " + " ".join(f"{value:.2f}" for value in seconds))
        round_ratios = [a / b for a, b in zip(rounds["ours"], rounds["ultralytics"], strict=True)]
        print("ratio train epoch with data ours/ultralytics within each round: "
              + " ".join(f"{ratio:.3f}" for ratio in round_ratios)
              + f" (median {statistics.median(round_ratios):.3f})")
        print(f"ratio train step ours/ultralytics: "
              f"{speed['ours']['train_step'] / speed['ultralytics']['train_step']:.3f}")
        print(f"ratio inference batch ours/ultralytics: "
              f"{speed['ours']['infer_batch'] / speed['ultralytics']['infer_batch']:.3f}")
        print(f"ratio train epoch with data ours/ultralytics: "
              f"{min(rounds['ours']) / min(rounds['ultralytics']):.3f}")
        if args.profile:
            print_profile(args, speed)
        if args.accuracy:
            for side in ("ours", "ultralytics"):
                result = run_worker(args, side, "accuracy")
                total = sum(result["epoch_times"])
                print(f"{side:12s} raccoon from scratch, {args.epochs} epochs at {args.imgsz} "
                      f"px: mAP50 {result['map50']:.4f} (training {total:.0f} s)")
                if result.get("test_map50") is not None:
                    print(f"{side:12s}   test with flip TTA at the end: mAP50 "
                          f"{result['test_map50']:.4f}; the whole run took "
                          f"{result['wall']:.0f} s of wall time")
                for seconds, value in result.get("curve", []):
                    print(f"{side:12s}   mAP50 {value:.4f} after {seconds:.0f} s of training")
        print(f"after: {load()}")


if __name__ == "__main__":
    main()
