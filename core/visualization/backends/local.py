"""LocalVisBackend: scalars as JSON lines, images as PNGs and the config as TOML on disk."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.visualization.backends.base import BaseVisBackend


def _json_number(value: Any) -> float | int | None:
    """A scalar (python number, 0-d tensor or array) as a JSON-safe number (NaN/inf -> None)."""
    number = value.item() if hasattr(value, "item") else value
    if isinstance(number, bool):
        return int(number)
    if isinstance(number, int):
        return number
    number = float(number)
    return number if math.isfinite(number) else None


class LocalVisBackend(BaseVisBackend):
    """Write everything under ``save_dir/vis_data``.

    - ``scalars.json``: JSON lines, one object per call: ``{"name": value, ..., "step": step}``;
    - ``vis_image/NAME_STEP.png``: images (``/`` in NAME becomes ``_``);
    - ``config.toml``: the merged config;
    - ``NAME.txt``: texts (latest wins).

    :param save_dir: the run's work dir.
    """

    def __init__(self, save_dir: str = "") -> None:
        super().__init__(save_dir)
        self.vis_dir = Path(save_dir) / "vis_data"
        self.scalar_file = self.vis_dir / "scalars.json"
        self.image_dir = self.vis_dir / "vis_image"
        self.config_file = self.vis_dir / "config.toml"

    def add_config(self, config: dict[str, Any]) -> None:
        from core.config import dump_config

        self.vis_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(dump_config(config), encoding="utf-8")

    def add_image(self, name: str, image: np.ndarray, step: int = 0) -> None:
        self.image_dir.mkdir(parents=True, exist_ok=True)
        safe_name = name.replace("/", "_").replace("\\", "_")
        Image.fromarray(image).save(self.image_dir / f"{safe_name}_{step}.png")

    def add_scalars(self, scalars: dict[str, float], step: int = 0) -> None:
        record: dict[str, Any] = {key: _json_number(value) for key, value in scalars.items()}
        record["step"] = int(step)
        self.vis_dir.mkdir(parents=True, exist_ok=True)
        with self.scalar_file.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def add_text(self, name: str, text: str, step: int = 0) -> None:
        self.vis_dir.mkdir(parents=True, exist_ok=True)
        safe_name = name.replace("/", "_").replace("\\", "_")
        (self.vis_dir / f"{safe_name}.txt").write_text(text, encoding="utf-8")
