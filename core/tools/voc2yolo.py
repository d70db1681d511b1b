"""Convert a Pascal VOC XML set to the YOLO (ultralytics) layout with a dataset YAML.

    python -m core.tools.voc2yolo DATA_ROOT --split train=train.txt --split val=val.txt \\
        --out OUT [--ann-dir Annotations] [--img-dir JPEGImages] [--classes a,b] [--link]

writes ``OUT/images/<split>/<image>``, ``OUT/labels/<split>/<stem>.txt`` (``class cx cy w h``
normalised to the image size) and ``OUT/<name>.yaml`` (``path`` absolute, ``names`` as a
mapping). Each split is read as :class:`~core.data.datasets.voc.VocDataset` reads it, so
boxes are clipped, bad objects and files are left out and counted the same way (printed on
stderr). ``difficult`` objects have no YOLO equivalent and are left out (counted).
``--keep-background`` keeps images whose XML has no ``<object>`` (empty label files). Images
are copied, or symlinked with ``--link``; a photo whose boxes lie on its stored pixels while
its EXIF orientation says to turn it is written without that tag (``YoloDataset`` turns
tagged images), so that it reads as VOC read it. Without ``--classes`` the class names found in
the split's XML files are used, sorted; ``--classes`` naming no found class, or one differing
from a found class only in case, is an error.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import yaml

from core.data.datasets.base import resolve_path
from core.data.datasets.exif_copy import copy_without_orientation
from core.data.datasets.image_size import read_header
from core.data.datasets.records import ImageRecord
from core.data.datasets.voc import VocDataset, read_split
from core.data.datasets.voc_xml import parse_voc_xml
from core.errors import ConfigError, DataError
from core.tools.cli import check_output_folder, make_output_folder, run_reporting_errors


def found_classes(ann_dir: Path, names: list[str]) -> list[str]:
    """Sorted class names of the objects in ``ann_dir/NAME.xml`` (unreadable files ignored)."""
    found: set[str] = set()
    for name in names:
        try:
            found.update(o.name for o in parse_voc_xml(ann_dir / f"{name}.xml").objects if o.name)
        except (DataError, OSError):
            continue
    return sorted(found)


def check_classes(classes: list[str], found: list[str], ann_dir: Path) -> None:
    """Refuse ``--classes`` names that differ from a found class only in case, or that match
    none of the classes found; mention (on stderr) the others without objects."""
    missing = [c for c in classes if c not in found]
    if not missing:
        return
    by_lower = {name.lower(): name for name in found}
    suggested = [repr(by_lower[c.lower()]) for c in missing if c.lower() in by_lower]
    if suggested or (found and len(missing) == len(classes)):
        hint = f"; did you mean {', '.join(suggested)}?" if suggested else ""
        raise ConfigError(f"--classes {','.join(classes)}: {missing} not among the class names "
                          f"of the objects in {ann_dir} ({found}){hint}")
    print(f"note: --classes {missing} have no objects in the listed files (classes without "
          "boxes)", file=sys.stderr)


def yolo_lines(dataset: VocDataset, index: int) -> list[str]:
    """``class cx cy w h`` lines (normalised) of record ``index`` of ``dataset``."""
    record = dataset.records[index]
    lines = []
    for (x1, y1, x2, y2), label in zip(record.boxes.tolist(), record.labels.tolist(),
                                       strict=True):
        cx, cy = (x1 + x2) / 2 / record.width, (y1 + y2) / 2 / record.height
        w, h = (x2 - x1) / record.width, (y2 - y1) / record.height
        lines.append(f"{label} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines


def labelled_unturned(record: ImageRecord) -> bool:
    """Whether the record's boxes lie on the stored pixels of an image that its EXIF
    orientation turns (YOLO readers turn it)."""
    if record.exif_transpose:
        return False
    try:
        return read_header(Path(record.img_path))[2] != 1
    except (OSError, ValueError):
        return False


def write_split(dataset: VocDataset, out: Path, split: str, link: bool) -> tuple[int, int]:
    """Write the images and label files of one split; ``(images, boxes)`` written.

    An image whose boxes lie on its stored pixels while its EXIF orientation says to turn it
    is written without that tag (a copy, even with ``link``), so that it reads as VOC read it.
    """
    images, labels = out / "images" / split, out / "labels" / split
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    boxes = untagged = 0
    for index in range(len(dataset)):
        record = dataset.records[index]
        source = Path(record.img_path)
        target = images / source.name
        if target.exists() or target.is_symlink():
            target.unlink()
        if labelled_unturned(record):
            copy_without_orientation(source, target)
            untagged += 1
        elif link:
            os.symlink(source.resolve(), target)
        else:
            shutil.copy2(source, target)
        lines = yolo_lines(dataset, index)
        boxes += len(lines)
        (labels / f"{source.stem}.txt").write_text("".join(f"{line}\n" for line in lines))
    if untagged:
        print(f"{split}: {untagged} images written without their EXIF orientation (their boxes "
              f"lie on the stored pixels){'; copied, not linked' if link else ''}",
              file=sys.stderr)
    return len(dataset), boxes


def parse_splits(values: list[str]) -> dict[str, str]:
    """``["train=train.txt", ...]`` -> ``{"train": "train.txt"}``."""
    splits = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--split: expected NAME=SPLIT_FILE, got {value!r}")
        splits[name] = path
    return splits


def convert(args: argparse.Namespace) -> str:
    """Convert every split; the summary line."""
    check_output_folder(Path(args.out).expanduser())
    root = Path(args.data_root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: VOC data_root not found")
    splits = parse_splits(args.split)
    ann_dir = resolve_path(args.ann_dir, str(root))
    names = [n for f in splits.values() for n in read_split(resolve_path(f, str(root)))]
    found = found_classes(ann_dir, names)
    if args.classes:
        classes = [c.strip() for c in args.classes.split(",")]
        check_classes(classes, found, ann_dir)
    else:
        classes = found
        if not classes:
            raise DataError(f"{ann_dir}: no objects with a class name in the listed files")
    out = make_output_folder(Path(args.out).expanduser().resolve())
    written = []
    for split, split_file in splits.items():
        dataset = VocDataset(data_root=str(root), ann_dir=args.ann_dir, img_dir=args.img_dir,
                             split_file=split_file, classes=classes,
                             keep_background=args.keep_background, strict=args.strict)
        count, boxes = write_split(dataset, out, split, args.link)
        difficult = sum(len(dataset.records[i].ignore_boxes) for i in range(len(dataset)))
        skipped = {**dataset.skipped, **({"difficult": difficult} if difficult else {})}
        if skipped:
            print(f"{split}: left out " + ", ".join(f"{k}: {v}" for k, v in sorted(
                skipped.items())), file=sys.stderr)
        written.append(f"{split} {count} images / {boxes} boxes")
    content = {"path": str(out), **{s: f"images/{s}" for s in splits},
               "names": dict(enumerate(classes))}
    yaml_path = out / f"{args.name or root.name}.yaml"
    yaml_path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    return f"wrote {yaml_path}: " + ", ".join(written) + f", {len(classes)} classes"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.tools.voc2yolo",
                                     description="Convert a VOC XML set to the YOLO layout.")
    parser.add_argument("data_root", help="the VOC set's folder")
    parser.add_argument("--split", action="append", required=True, metavar="NAME=FILE",
                        help="a split and its file of image names (relative to data_root); "
                             "repeatable")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--ann-dir", default="Annotations", help="XML folder (in data_root)")
    parser.add_argument("--img-dir", default="JPEGImages", help="image folder (in data_root)")
    parser.add_argument("--classes", help="comma-separated class names (default: all found)")
    parser.add_argument("--name", help="YAML file name without .yaml (default: data_root's)")
    parser.add_argument("--link", action="store_true", help="symlink images instead of copying")
    parser.add_argument("--keep-background", action="store_true",
                        help="keep images without objects (empty label files)")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad item")
    args = parser.parse_args(argv)
    return run_reporting_errors(lambda: convert(args), (DataError, ConfigError))


if __name__ == "__main__":
    raise SystemExit(main())
