"""Export a trained detector to ONNX and check the file against PyTorch.

    python -m core.tools.export CONFIG CKPT --format onnx [--dynamic] [--size H W] [--out F]

The ONNX model takes ``images (B, 3, H, W)`` float32, normalised as the config's test pipeline
does (its ``Normalize``), and returns ``boxes (B, K, 4)`` xyxy in input pixels, ``scores (B, K)``
and ``labels (B, K)`` int64, ``K`` = the detections per image (a dense head's
``max_per_img``), rows with score 0 unused, and, for a model with instance masks,
``masks (B, K, H, W)`` bool at the input's size (see :mod:`core.tools.onnx_detector`, also
for the ``export_outputs`` method a detector defines to be exported its own way).
``--dynamic`` leaves batch, height and width free; otherwise they are fixed at 1 x ``--size``
(default: the test pipeline's ``Resize`` scale).

After writing, the file is checked with ``onnx.checker`` and run in onnxruntime on one image
(``--image``, through the test pipeline, else a seeded random image); its detections must equal
PyTorch's (scores within 1e-4, boxes within 1e-3 px, masks with IoU >= 0.99). Needs
``pip install plugdet[export]``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.engine.full_config import load_full_config
from core.engine.run_config import resolve_device
from core.errors import ConfigError, PlugdetError
from core.structures import DetBatch, DetSample, Instances
from core.tools.cli import add_override_arguments, check_output_file, run_tool
from core.tools.inference import build_test_transforms, eval_loader_table, load_detector
from core.tools.onnx_detector import ExportableDetector

OPSET = 17
SCORE_TOL = 1e-4
BOX_TOL = 1e-3
#: Least IoU of an ONNX mask with PyTorch's (pixels at the 0.5 boundary may flip).
MASK_IOU = 0.99
INPUT_NAMES = ["images"]
#: The outputs of a detection model; a model with masks adds :data:`MASK_OUTPUT`.
OUTPUT_NAMES = ["boxes", "scores", "labels"]
MASK_OUTPUT = "masks"

EXAMPLES = """examples:
  {prog} CONFIG work_dirs/demo/RUN/best.pth --format onnx --size 160 160
  {prog} CONFIG CKPT --format onnx --dynamic --image photo.jpg --out m.onnx
"""


class ExportCheckError(PlugdetError):
    """The exported model's detections differ from PyTorch's."""


def _import_onnx() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise ConfigError(f"export needs onnx and onnxruntime ({exc.name} is missing): "
                          "pip install 'plugdet[export]'") from None
    return onnx, onnxruntime


def default_size(cfg: dict[str, Any]) -> tuple[int, int] | None:
    """``(h, w)`` of the test pipeline's first ``Resize`` scale, if it has one."""
    _, table = eval_loader_table(cfg)
    for transform in table["dataset"].get("pipeline", []):
        if isinstance(transform, dict) and transform.get("type") == "Resize":
            scale = transform.get("scale")
            if isinstance(scale, list) and len(scale) == 2:
                return int(scale[0]), int(scale[1])
    return None


def check_image(cfg: dict[str, Any], image: str | None, size: tuple[int, int] | None,
                ) -> torch.Tensor:
    """``(1, 3, H, W)`` normalised input: ``image`` through the test pipeline, padded (or
    cropped) to ``size`` when given; without ``image`` a seeded random image of ``size``
    put through the pipeline's transforms after loading."""
    transforms = build_test_transforms(cfg)
    rng = np.random.default_rng(0)
    if image is not None:
        sample = DetSample(img_path=image)
    else:
        if size is None:
            raise ConfigError("give --size H W (or --image) for a test pipeline without Resize")
        pixels = torch.from_numpy(rng.integers(0, 256, (3, *size), dtype=np.uint8))
        sample = DetSample(image=pixels, ori_shape=size, img_shape=size, pad_shape=size)
    for transform in transforms:
        sample = transform(sample, rng)
    tensor = sample.image.float()[None]
    if size is not None:
        out = tensor.new_zeros((1, tensor.shape[1], *size))
        height, width = min(size[0], tensor.shape[2]), min(size[1], tensor.shape[3])
        out[:, :, :height, :width] = tensor[:, :, :height, :width]
        tensor = out
    return tensor


def torch_detections(model: torch.nn.Module, images: torch.Tensor) -> list[Instances]:
    """``model.predict`` (eval mode) of ``(B, 3, H, W)`` inputs taken as whole images."""
    model.eval()
    shape = (int(images.shape[2]), int(images.shape[3]))
    samples = [DetSample(img_id=i, ori_shape=shape, img_shape=shape, pad_shape=shape)
               for i in range(images.shape[0])]
    with torch.no_grad():
        return [p.to("cpu") for p in model.predict(DetBatch(images, samples))]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ``(H, W)`` bool masks (1 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def compare(reference: list[Instances], outputs: list[np.ndarray]) -> list[str]:
    """Differences between PyTorch detections and ONNX ``(boxes, scores, labels[, masks])``
    outputs: the same detections (label, score within :data:`SCORE_TOL`, box within
    :data:`BOX_TOL` px, mask IoU at least :data:`MASK_IOU`) must come out, in any order of
    equal scores."""
    boxes, scores, labels = outputs[:3]
    masks = outputs[3] if len(outputs) > 3 else None
    problems = []
    for image, ref in enumerate(reference):
        if (ref.masks is None) != (masks is None):
            problems.append(f"image {image}: PyTorch gives {'no ' * (ref.masks is None)}masks, "
                            f"the ONNX model {'no ' * (masks is None)}masks")
            continue
        valid = np.flatnonzero(scores[image] > 0)
        got = [(int(labels[image][j]), float(scores[image][j]), boxes[image][j], j)
               for j in valid]
        if len(got) != len(ref):
            problems.append(f"image {image}: {len(got)} detections, PyTorch {len(ref)}")
            continue
        for index, (box, score, label) in enumerate(zip(
                ref.boxes.numpy(), ref.scores.numpy(), ref.labels.numpy(), strict=True)):
            match = [g for g in got if g[0] == label and abs(g[1] - score) <= SCORE_TOL
                     and np.abs(g[2] - box).max() <= BOX_TOL]
            if not match:
                problems.append(f"image {image}: no match for label {label} score {score:.5f} "
                                f"box {np.round(box, 3).tolist()}")
                continue
            row = match[0][3]
            got = [g for g in got if g[3] != row]  # by row: equal (label, score) pairs tie
            if masks is not None and ref.masks is not None:
                iou = mask_iou(masks[image][row], np.asarray(ref.masks[index], dtype=bool))
                if iou < MASK_IOU:
                    problems.append(f"image {image}: the mask of label {label} score "
                                    f"{score:.5f} has IoU {iou:.4f} with PyTorch's")
    return problems


def export_onnx(model: torch.nn.Module, out: Path, size: tuple[int, int],
                dynamic: bool) -> Path:
    """Write ``ExportableDetector(model)`` as ONNX to ``out``, traced at 1 x 3 x ``size``
    (with ``dynamic``, batch, height and width left free); outputs :data:`OUTPUT_NAMES`, and
    :data:`MASK_OUTPUT` when the model's ``export_outputs`` gives masks."""
    wrapper = ExportableDetector(model).cpu().eval()
    example = torch.zeros((1, 3, *size))
    count = len(OUTPUT_NAMES)
    if wrapper.own_export:
        with torch.no_grad():
            count = len(wrapper(example))
    names = [*OUTPUT_NAMES, MASK_OUTPUT][:count]
    axes = None
    if dynamic:
        axes = {"images": {0: "batch", 2: "height", 3: "width"},
                **{name: {0: "batch"} for name in OUTPUT_NAMES}}
        if count > len(OUTPUT_NAMES):
            axes[MASK_OUTPUT] = {0: "batch", 2: "height", 3: "width"}
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape arithmetic, legacy exporter
        torch.onnx.export(wrapper, (example,), str(out), input_names=INPUT_NAMES,
                          output_names=names, dynamic_axes=axes, opset_version=OPSET,
                          dynamo=False)
    return out


def run_onnx(path: Path, images: torch.Tensor) -> list[np.ndarray]:
    """Run the ONNX file at ``path`` in onnxruntime (CPU) on ``images``; every output, in the
    order of :func:`export_onnx`."""
    _, onnxruntime = _import_onnx()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAMES[0]: images.numpy()})


def run_export(args: argparse.Namespace) -> str:
    """Export, check and return the summary line."""
    if args.format != "onnx":
        raise ConfigError(f"--format: only 'onnx' is supported, got {args.format!r}")
    default_out = Path(args.checkpoint).with_suffix(".onnx")
    out = check_output_file(Path(args.out).expanduser() if args.out else default_out,
                            example_name=default_out.name)
    onnx, _ = _import_onnx()
    cfg = load_full_config(args.config, args.overrides, allow_new=args.set_new)
    model = load_detector(cfg, args.checkpoint, resolve_device("cpu"))
    size = tuple(args.size) if args.size else default_size(cfg)
    images = check_image(cfg, args.image, None if args.dynamic and args.image else size)
    export_size = size or (int(images.shape[2]), int(images.shape[3]))
    export_onnx(model, out, export_size, args.dynamic)
    onnx.checker.check_model(str(out))
    outputs = run_onnx(out, images)
    problems = compare(torch_detections(model, images), outputs)
    if problems:
        raise ExportCheckError(f"{out}: onnxruntime differs from PyTorch: "
                               + "; ".join(problems[:5]))
    kind = "dynamic size" if args.dynamic else f"fixed size 1x3x{export_size[0]}x{export_size[1]}"
    masks = ", with masks" if len(outputs) > len(OUTPUT_NAMES) else ""
    return (f"wrote {out} ({kind}{masks}); onnxruntime matches PyTorch on a "
            f"{images.shape[2]}x{images.shape[3]} image")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``export`` (shared with ``plugdet export``)."""
    parser.add_argument("config", help="the TOML config the checkpoint was trained with")
    parser.add_argument("checkpoint", help="a checkpoint (.pth) of that config")
    parser.add_argument("--format", default="onnx", choices=["onnx"], help="output format")
    parser.add_argument("--dynamic", action="store_true",
                        help="leave batch size, height and width free")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                        help="input size (default: the test pipeline's Resize scale)")
    parser.add_argument("--image", help="image for the check (default: seeded random pixels)")
    parser.add_argument("--out", help="output file (default: the checkpoint with .onnx)")
    add_override_arguments(parser)


def main(argv: list[str] | None = None, prog: str = "python -m core.tools.export") -> int:
    """Run the tool; returns the exit status."""
    return run_tool(argv, prog, __doc__, EXAMPLES, add_arguments, run_export)


if __name__ == "__main__":
    sys.exit(main())
