"""Save training samples, after the training pipeline, with their boxes drawn.

    python -m core.tools.browse_dataset CONFIG --out DIR [--n 20] [--split train]

Images are de-normalized with the pipeline's Normalize, cropped to ``img_shape`` (no
padding) and written as PNG with ground-truth boxes and class names (ignore regions in
grey).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from core.config import load_config
from core.data.transforms.photometric import Normalize
from core.errors import PlugdetError
from core.structures import DetSample
from core.tools.cli import run_reporting_errors

IGNORE_COLOUR = (160, 160, 160)
PALETTE = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
]  # fmt: skip


def displayable(sample: DetSample, normalize: Normalize | None) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of the sample's image, de-normalized and without padding."""
    image = sample.image
    if image is None:
        raise PlugdetError(f"sample img_id={sample.img_id} has no image (pipeline lacks LoadImage)")
    if image.dtype != torch.uint8:
        image = normalize.denormalize(image) if normalize else image.clamp(0, 255).byte()
    h, w = sample.img_shape
    return image[:, :h, :w].permute(1, 2, 0).contiguous().numpy()


def draw_sample(image: np.ndarray, sample: DetSample, classes: tuple[str, ...]) -> Image.Image:
    """The image with ground-truth boxes and class names."""
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    for box in sample.ignore.boxes.tolist():
        draw.rectangle(box, outline=IGNORE_COLOUR, width=1)
    for box, label in zip(sample.gt.boxes.tolist(), sample.gt.labels.tolist(), strict=True):
        colour = PALETTE[label % len(PALETTE)]
        draw.rectangle(box, outline=colour, width=2)
        name = classes[label] if 0 <= label < len(classes) else str(label)
        left, top = box[0], max(0.0, box[1] - 11)
        text_box = draw.textbbox((left, top), name)
        draw.rectangle(text_box, fill=colour)
        draw.text((left, top), name, fill=(0, 0, 0))
    return canvas


def browse(config: str, out: Path, count: int, split: str, seed: int = 0) -> list[Path]:
    """Write ``count`` samples of ``<split>_dataloader``'s dataset to ``out``; returns paths."""
    from core.plugins import get_registries

    cfg = load_config(config)
    key = f"{split}_dataloader"
    if key not in cfg or "dataset" not in cfg[key]:
        raise PlugdetError(f"{config}: no [{key}.dataset] table")
    dataset = get_registries().build("dataset", cfg[key]["dataset"], path=f"{key}.dataset")
    normalize = next((t for t in dataset.pipeline.transforms if isinstance(t, Normalize)), None)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    order = np.random.default_rng(seed).permutation(len(dataset))[:count]
    for position, index in enumerate(order.tolist()):
        sample = dataset[(index, seed + position)]
        samples = sample if isinstance(sample, list) else [sample]
        for view, item in enumerate(samples):
            image = draw_sample(displayable(item, normalize), item, tuple(dataset.classes))
            stem = Path(item.img_path).stem or f"img{item.img_id}"
            suffix = f"_view{view}" if len(samples) > 1 else ""
            path = out / f"{position:04d}_{stem}{suffix}.png"
            image.save(path)
            written.append(path)
    return written


EXAMPLES = """examples:
  {prog} CONFIG --out work_dirs/browse --n 8
  {prog} CONFIG --out browse_val --split val --seed 1
"""


def main(argv: list[str] | None = None, prog: str = "python -m core.tools.browse_dataset",
         ) -> int:
    """Run the tool; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Save pipeline outputs with ground-truth boxes as PNG files.",
        epilog=EXAMPLES.format(prog=prog), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", help="TOML config with a [<split>_dataloader.dataset] table")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--n", type=int, default=20, help="number of samples")
    parser.add_argument("--split", default="train", choices=["train", "val", "test"])
    parser.add_argument("--seed", type=int, default=0, help="sample choice and augmentation")
    args = parser.parse_args(argv)

    def work() -> str:
        written = browse(args.config, args.out, args.n, args.split, args.seed)
        return f"wrote {len(written)} images to {args.out}"

    return run_reporting_errors(work, PlugdetError)


if __name__ == "__main__":
    sys.exit(main())
