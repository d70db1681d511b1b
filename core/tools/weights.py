"""Pretrained weights of other frameworks: list the converters, describe a file, convert one.

    plugdet weights list
    plugdet weights inspect FILE
    plugdet weights convert FILE --config CFG --out OUT.pth|OUT.safetensors [--set KEY=VALUE]

``inspect`` reads FILE (or ``torchvision://NAME``) as ``load_from`` does, running none of its
code, and builds no model. ``convert`` builds the model of CFG with its datasets' classes,
converts and fits FILE as ``load_from`` would (``load_from_class_map`` of CFG included), and
saves a plugdet checkpoint: ``{"meta", "state_dict"}`` for ``.pth``, or a safetensors file with
the same ``meta`` in its header. ``load_from`` loads it key for key, or fits its class rows to
a dataset with other classes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import attrs
import torch

from core.engine.checkpoint import atomic_write_bytes, save_checkpoint
from core.engine.class_count import DATASET_KEYS, dataset_classes
from core.engine.full_config import load_full_config
from core.engine.run_config import class_map
from core.errors import ConfigError, writing
from core.models.backbones.pretrained import pretrained_weights_skipped
from core.tools.cli import add_override_arguments, check_output_file, run_tool
from core.weights.checkpoint import PeerCheckpoint, read_checkpoint
from core.weights.fitting import fit_to_model
from core.weights.loading import convert_checkpoint, converted_meta, weight_converters
from core.weights.safetensors_files import safetensors_bytes

EXAMPLES = """examples:
  {prog} list
  {prog} inspect yolov8n.pt
  {prog} convert torchvision://retinanet_resnet50_fpn --config CFG --out retinanet.safetensors
  {prog} convert yolov8n.pt --config CFG --out yolov8n_plugdet.pth --set train.max_epochs=1
"""
#: Class names shown by ``inspect`` before the list is cut short.
SHOWN_CLASSES = 8
#: State dict keys of running statistics, left out of the parameter count.
STATISTICS = ("running_mean", "running_var", "num_batches_tracked")
SUFFIXES = (".pth", ".pt", ".safetensors")


def list_converters() -> str:
    """One line per registered converter: name, source, licence of the weights, config."""
    converters = weight_converters()
    if not converters:
        return "no weight converters are installed (plugins register them in " \
               "register_weight_converters)"
    width = max(len(name) for name, _ in converters)
    lines = [f"weight converters ({len(converters)}):"]
    lines += [f"  {name:<{width}}  source {c.source:<11}  licence {c.licence:<12}  "
              f"config {c.config}" for name, c in converters]
    return "\n".join(lines)


def _classes_line(classes: tuple[str, ...] | None) -> str:
    if classes is None:
        return "not named in the file"
    shown = ", ".join(classes[:SHOWN_CLASSES])
    return f"{len(classes)} ({shown}{', ...' if len(classes) > SHOWN_CLASSES else ''})"


def describe(checkpoint: PeerCheckpoint) -> str:
    """What ``inspect`` prints: source, architecture, classes, tensor and parameter counts,
    and the installed converters of its source."""
    parameters = sum(value.numel() for key, value in checkpoint.state.items()
                     if value.is_floating_point() and not key.endswith(STATISTICS))
    converters = [name for name, c in weight_converters() if c.source == checkpoint.source]
    reading = "none needed (plugdet's own)" if checkpoint.source == "plugdet" else \
        ", ".join(converters) or "none installed"
    return "\n".join([
        checkpoint.path,
        f"  source: {checkpoint.source}",
        f"  architecture: {checkpoint.architecture or 'not named in the file'}",
        f"  classes: {_classes_line(checkpoint.classes)}",
        f"  tensors: {len(checkpoint.state)}",
        f"  parameters: {parameters:,} (floating-point values, BatchNorm statistics left out)",
        f"  converters of {checkpoint.source} files: {reading}",
    ])


def _config_classes(cfg: dict[str, Any]) -> tuple[str, ...] | None:
    """The classes of the config's first dataset that names them without reading its data."""
    for key in DATASET_KEYS:
        table = cfg.get(key)
        if isinstance(table, dict) and "dataset" in table:
            classes = dataset_classes(table["dataset"], f"{key}.dataset")
            if classes is not None:
                return classes
    return None


def _save(state: dict[str, torch.Tensor], meta: dict[str, Any], out: Path) -> None:
    if out.suffix == ".safetensors":
        data = safetensors_bytes({key: value.clone() for key, value in state.items()}, meta)
        with writing(out):
            atomic_write_bytes(out, lambda file: file.write(data))
    else:
        save_checkpoint({"meta": meta, "state_dict": state}, out)


def convert(source: str, config: str, out: Path, overrides: list[str],
            allow_new: bool = False) -> str:
    """Convert ``source`` for the model of ``config`` and save it to ``out``; returns the
    report's line and where the file went."""
    from core.plugins import get_registries

    if out.suffix not in SUFFIXES:
        raise ConfigError(f"--out {out}: expected a {', '.join(SUFFIXES)} file")
    check_output_file(out, "converted.safetensors")
    cfg = load_full_config(config, overrides, allow_new=allow_new)
    if "model" not in cfg:
        raise ConfigError(f"{config}: no model table")
    classes = _config_classes(cfg)
    checkpoint = read_checkpoint(source)
    with pretrained_weights_skipped():  # every weight comes from the checkpoint
        model = get_registries().build("detector", cfg["model"], path="model")
    converted, origin = convert_checkpoint(checkpoint, model)
    report = fit_to_model(converted, model, classes, class_map(cfg, source), checkpoint.path,
                          origin)
    # the saved rows are the model's: the stride follows the model's class count
    rows = {key: attrs.evolve(row, stride=None) for key, row in converted.class_rows.items()}
    state = model.state_dict()
    _save(state, converted_meta(classes, rows, checkpoint, origin), out)
    return f"{report.log_line()}\nwrote {out} ({len(state)} tensors)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The actions and their options."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="the installed weight converters")
    inspect = actions.add_parser("inspect", help="describe a checkpoint file (no model built)")
    inspect.add_argument("file", metavar="FILE", help="a checkpoint file or torchvision://NAME")
    converting = actions.add_parser(
        "convert", help="save a plugdet checkpoint of FILE for the model of a config")
    converting.add_argument("file", metavar="FILE", help="a checkpoint file or torchvision://NAME")
    converting.add_argument("--config", required=True, help="the config building the model")
    converting.add_argument("--out", required=True, type=Path,
                            help="the plugdet checkpoint to write (.pth or .safetensors)")
    add_override_arguments(converting)


def run(args: argparse.Namespace) -> str:
    """The chosen action; returns what it prints."""
    if args.action == "list":
        return list_converters()
    if args.action == "inspect":
        return describe(read_checkpoint(args.file))
    return convert(args.file, args.config, args.out, args.overrides, args.set_new)


def main(argv: list[str] | None = None, prog: str = "python -m core.tools.weights") -> int:
    """Run the tool; returns the exit status."""
    return run_tool(argv, prog, __doc__, EXAMPLES, add_arguments, run)


if __name__ == "__main__":
    sys.exit(main())
