"""Parameters and FLOPs of a detector, per module, counted by torch's FLOP counter.

    python -m core.tools.model_info CONFIG [--shape H W] [--depth N] [--set KEY=VALUE]

The detector of CONFIG is built with random weights (``init_cfg`` tables are dropped: nothing
is loaded or downloaded) and run once in eval mode on a ``(1, 3, H, W)`` input through
``extract_feat`` and the head's forward, without post-processing. FLOPs are those of
``torch.utils.flop_counter.FlopCounterMode``: convolutions, matrix products and attention,
one multiply-add counted as 2 FLOPs; element-wise operations, pooling and normalisation are
not counted. A deformable convolution is counted as the convolution it deforms (the bilinear
sampling is not counted). Modules up to ``--depth`` levels below the detector are listed, then
the enhance layers summed by type, then the total.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from core.engine.full_config import load_full_config
from core.errors import ConfigError
from core.tools.cli import add_override_arguments, run_reporting_errors
from core.tools.model_graph import DetectorGraph

DEFAULT_SHAPE = (800, 1333)  # the COCO test scale
DEFAULT_DEPTH = 2
INIT_KEY = "init_cfg"
ROOT_PREFIX = f"{DetectorGraph.__name__}.detector"
TOTAL_KEY = "Global"  # FlopCounterMode's key for the whole run
UNITS = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))
NAME_WIDTH = 44


def deform_conv2d_flops(
    input_shape: torch.Size, weight_shape: torch.Size, *args: Any, out_shape: torch.Size, **_: Any
) -> int:
    """FLOPs of ``torchvision::deform_conv2d``: those of the convolution it deforms."""
    return conv_flop_count(list(input_shape), list(weight_shape), list(out_shape))


def custom_flop_formulas() -> dict[Any, Any]:
    """Formulas for ops torch's counter does not know, passed as its ``custom_mapping``."""
    import torchvision  # noqa: F401  (registers torch.ops.torchvision)

    return {torch.ops.torchvision.deform_conv2d: deform_conv2d_flops}


@attrs.frozen
class ModuleCost:
    """One row: a module's qualified name (relative to the detector), type and cost."""

    name: str
    kind: str
    params: int
    flops: int


@attrs.frozen
class ModelInfo:
    """Cost of a detector on one input: listed modules, enhance layers by type, totals."""

    shape: tuple[int, int]
    rows: list[ModuleCost]
    enhance: list[tuple[str, int, int, int]]  # (registered name, count, params, flops)
    params: int
    flops: int


def drop_init_cfgs(table: Any) -> Any:
    """A copy of a config table without any ``init_cfg`` key (at any depth)."""
    if isinstance(table, Mapping):
        return {k: drop_init_cfgs(v) for k, v in table.items() if k != INIT_KEY}
    if isinstance(table, list):
        return [drop_init_cfgs(item) for item in table]
    return table


def enhance_classes() -> dict[type, str]:
    """Classes registered in the ``enhance`` stage -> their registered names."""
    from core.plugins import get_registries

    registry = get_registries()["enhance"]
    return {entry.factory: entry.name for entry in registry if isinstance(entry.factory, type)}


def measure(detector: nn.Module, shape: tuple[int, int], depth: int = DEFAULT_DEPTH) -> ModelInfo:
    """Run ``detector`` once on ``(1, 3, *shape)`` under the FLOP counter and collect costs."""
    graph = DetectorGraph(detector.eval())
    counter = FlopCounterMode(display=False, custom_mapping=custom_flop_formulas())
    with torch.no_grad(), counter:
        graph(torch.rand(1, 3, *shape))
    counts = counter.get_flop_counts()

    def flops_of(name: str, module: nn.Module) -> int:
        """Counted FLOPs of a called module; a container that is never called (ModuleList,
        ModuleDict) gets the sum of its children's."""
        key = f"{ROOT_PREFIX}.{name}" if name else ROOT_PREFIX
        if key in counts:
            return int(sum(counts[key].values()))
        return sum(flops_of(f"{name}.{child}", m) for child, m in module.named_children())

    rows, by_kind = [], {}
    kinds = enhance_classes()
    for name, module in detector.named_modules():
        params = sum(p.numel() for p in module.parameters())
        flops = flops_of(name, module)
        if name and name.count(".") < depth and (params or flops):
            rows.append(ModuleCost(name, type(module).__name__, params, flops))
        if type(module) in kinds:
            kind = kinds[type(module)]
            count, total_params, total_flops = by_kind.get(kind, (0, 0, 0))
            by_kind[kind] = (count + 1, total_params + params, total_flops + flops)
    enhance = [(kind, *values) for kind, values in sorted(by_kind.items())]
    total_params = sum(p.numel() for p in detector.parameters())
    total_flops = int(sum(counts.get(TOTAL_KEY, {}).values()))
    return ModelInfo(tuple(shape), rows, enhance, total_params, total_flops)


def human(value: float) -> str:
    """``12345678 -> '12.35M'``."""
    for scale, unit in UNITS:
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}"
    return f"{value:.0f}"


def format_info(info: ModelInfo) -> str:
    """The table printed by the tool."""
    height, width = info.shape

    def line(name: str, kind: str, params: int, flops: int) -> str:
        share = 100.0 * flops / info.flops if info.flops else 0.0
        return (
            f"{name:<{NAME_WIDTH}} {kind:<22} {human(params):>9} {human(flops):>9}F {share:6.2f}%"
        )

    header = f"{'module':<{NAME_WIDTH}} {'type':<22} {'params':>9} {'FLOPs':>10} {'share':>7}"
    lines = [f"input: (1, 3, {height}, {width})", header]
    lines += [line("  " * r.name.count(".") + r.name, r.kind, r.params, r.flops) for r in info.rows]
    if info.enhance:
        lines.append("enhance layers, by type:")
        lines += [line(f"  {kind} x{count}", "", p, f) for kind, count, p, f in info.enhance]
    lines.append(line("total", "", info.params, info.flops))
    lines.append(
        f"total: {info.params:,} parameters, {info.flops:,} FLOPs "
        f"at input (1, 3, {height}, {width})"
    )
    return "\n".join(lines)


def model_info(cfg: dict[str, Any], shape: tuple[int, int], depth: int) -> ModelInfo:
    """Build ``cfg["model"]`` with random weights and measure it."""
    from core.plugins import get_registries

    if "model" not in cfg:
        raise ConfigError("model: missing table")
    if depth < 0:
        raise ConfigError(f"--depth: expected a non-negative int, got {depth}")
    if min(shape) < 1:
        raise ConfigError(f"--shape: expected positive sizes, got {list(shape)}")
    detector = get_registries().build("detector", drop_init_cfgs(cfg["model"]), path="model")
    return measure(detector, shape, depth)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.tools.model_info", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("config", help="config file (TOML)")
    parser.add_argument(
        "--shape",
        nargs=2,
        type=int,
        default=DEFAULT_SHAPE,
        metavar=("H", "W"),
        help=f"input size (default {DEFAULT_SHAPE[0]} {DEFAULT_SHAPE[1]})",
    )
    parser.add_argument(
        "--depth",
        type=int,
        default=DEFAULT_DEPTH,
        help=f"list modules this many levels below the detector (default {DEFAULT_DEPTH})",
    )
    add_override_arguments(parser, allow_new=False)
    args = parser.parse_args(argv)

    def work() -> str:
        cfg = load_full_config(args.config, overrides=args.overrides)
        info = model_info(cfg, tuple(args.shape), args.depth)
        return f"{Path(args.config).name}\n{format_info(info)}"

    return run_reporting_errors(work, ConfigError)


if __name__ == "__main__":
    sys.exit(main())
