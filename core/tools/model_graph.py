"""Write a detector's graph to TensorBoard.

    python -m core.tools.model_graph CONFIG [--work-dir DIR] [--shape H W] [--set KEY=VALUE]

The graph is traced on a ``(1, 3, H, W)`` input through ``extract_feat`` and the head's
forward (``head(feats)``) with random weights, and written by the ``TensorboardVisBackend``
(distribution ``plugdet-tensorboard``) to ``DIR/vis_data/tensorboard``; DIR defaults to
``work_dirs/<config stem>/graph``. View it with ``tensorboard --logdir DIR``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from core.engine.full_config import load_full_config
from core.errors import ConfigError
from core.tools.cli import add_override_arguments, run_reporting_errors
from core.visualization import Visualizer

DEFAULT_SHAPE = (256, 256)
GRAPH_BACKEND = {"type": "TensorboardVisBackend", "name": "tensorboard"}


def flatten_tensors(value: Any) -> tuple[Tensor, ...]:
    """Every tensor in nested lists/tuples/dicts, in order."""
    if isinstance(value, Tensor):
        return (value,)
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return tuple(t for item in value for t in flatten_tensors(item))
    return ()


class DetectorGraph(nn.Module):
    """``images (B, 3, H, W)`` -> flat tuple of the neck features and the head outputs."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        if not callable(getattr(detector, "extract_feat", None)):
            raise ConfigError(f"model: {type(detector).__name__} has no extract_feat(images)")
        self.detector = detector

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        feats = self.detector.extract_feat(images)
        head = getattr(self.detector, "head", None)
        outputs = head(feats) if isinstance(head, nn.Module) else ()
        return flatten_tensors(feats) + flatten_tensors(outputs)


def write_graph(cfg: dict[str, Any], work_dir: str | Path,
                shape: tuple[int, int] = DEFAULT_SHAPE) -> Path:
    """Build ``cfg["model"]``, trace it and write the graph; returns the event directory."""
    from core.plugins import get_registries

    if "model" not in cfg:
        raise ConfigError("model: missing table")
    detector = get_registries().build("detector", cfg["model"], path="model").eval()
    visualizer = Visualizer(vis_backends=[GRAPH_BACKEND], save_dir=str(work_dir))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # TensorBoard's graph export is built on torch.jit.trace, deprecated in torch 2.x
            warnings.filterwarnings("ignore", message=".*torch.jit.trace", category=FutureWarning)
            visualizer.add_graph(DetectorGraph(detector), torch.rand(1, 3, *shape))
    finally:
        visualizer.close()
    return Path(work_dir) / "vis_data" / "tensorboard"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.tools.model_graph",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="config file (TOML)")
    parser.add_argument("--work-dir", help="output dir (default work_dirs/<config stem>/graph)")
    parser.add_argument("--shape", nargs=2, type=int, default=DEFAULT_SHAPE,
                        metavar=("H", "W"), help="input size (default 256 256)")
    add_override_arguments(parser, allow_new=False)
    args = parser.parse_args(argv)
    work_dir = args.work_dir or str(Path("work_dirs") / Path(args.config).stem / "graph")

    def work() -> str:
        cfg = load_full_config(args.config, overrides=args.overrides)
        event_dir = write_graph(cfg, work_dir, tuple(args.shape))
        return f"model graph written to {event_dir}; view: tensorboard --logdir {work_dir}"

    return run_reporting_errors(work, ConfigError)


if __name__ == "__main__":
    sys.exit(main())
