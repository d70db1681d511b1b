"""Convert Pascal VOC XML annotations to one COCO ``instances`` JSON file.

    python -m core.tools.voc2coco ANN_DIR --split FILE --out OUT.json [--classes a,b]

Without ``--split`` every ``*.xml`` of ANN_DIR is converted; without ``--classes`` the class
names found in the files are used, sorted (category ids 1..K). ``difficult`` objects become
``iscrowd = 1`` (ignore regions for :class:`~core.data.datasets.coco.CocoDataset`). Boxes
partly outside their image are clipped; degenerate boxes, unknown classes and unreadable
files are left out and counted on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.data.datasets.coco import check_box
from core.data.datasets.skips import SkipLog
from core.data.datasets.voc import read_split
from core.data.datasets.voc_xml import VocAnnotation, parse_voc_xml
from core.errors import DataError


def convert(
    ann_dir: Path,
    names: list[str],
    classes: list[str] | None = None,
    img_suffix: str = ".jpg",
    strict: bool = False,
) -> tuple[dict[str, Any], dict[str, int]]:
    """COCO dict of the XML files ``ann_dir/NAME.xml`` and the counts of what was left out."""
    skips = SkipLog(f"voc2coco({ann_dir})", strict)
    parsed: list[tuple[str, VocAnnotation]] = []
    for name in names:
        path = ann_dir / f"{name}.xml"
        if not path.is_file():
            skips.skip("missing_annotation", f"{path}: annotation of {name!r} not found")
            continue
        try:
            parsed.append((name, parse_voc_xml(path)))
        except DataError as exc:
            skips.skip("bad_xml", str(exc))
    if classes is None:
        classes = sorted({o.name for _, a in parsed for o in a.objects if o.name})
    cat_id = {name: index + 1 for index, name in enumerate(classes)}
    images, annotations = [], []
    repaired: dict[str, int] = {}
    for image_id, (name, annotation) in enumerate(parsed, start=1):
        path = ann_dir / f"{name}.xml"
        if annotation.width <= 0 or annotation.height <= 0:
            skips.skip("bad_image_size", f"{path}: missing or invalid <size>")
            continue
        if not annotation.objects:
            skips.skip("no_objects", f"{path}: XML has no <object>")
            continue
        images.append(
            {
                "id": image_id,
                "file_name": annotation.filename or f"{name}{img_suffix}",
                "width": annotation.width,
                "height": annotation.height,
            }
        )
        for index, obj in enumerate(annotation.objects):
            where = f"{path}: object {index}"
            if obj.name not in cat_id:
                skips.skip("unknown_class", f"{where}: class {obj.name!r} not in {classes}")
                continue
            if obj.box is None:
                skips.skip("malformed_box", f"{where}: <bndbox> needs numeric coordinates")
                continue
            box = check_box(obj.box, annotation.width, annotation.height, where, skips, repaired)
            if box is None:
                continue
            width, height = box[2] - box[0], box[3] - box[1]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cat_id[obj.name],
                    "bbox": [box[0], box[1], width, height],
                    "area": width * height,
                    "iscrowd": int(obj.difficult),
                }
            )
    categories = [{"id": cat_id[name], "name": name} for name in classes]
    counts = {**skips.as_dict(), **repaired}
    return {"images": images, "annotations": annotations, "categories": categories}, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.tools.voc2coco", description="Convert VOC XML files to COCO JSON."
    )
    parser.add_argument("ann_dir", type=Path, help="folder of NAME.xml files")
    parser.add_argument("--split", type=Path, help="file listing the names to convert")
    parser.add_argument("--out", type=Path, required=True, help="output JSON file")
    parser.add_argument("--classes", help="comma-separated class names (default: all found)")
    parser.add_argument("--img-suffix", default=".jpg", help="suffix when <filename> is missing")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad item")
    args = parser.parse_args(argv)
    try:
        if not args.ann_dir.is_dir():
            raise DataError(f"{args.ann_dir}: annotation folder not found")
        if args.split:
            names = read_split(args.split, args.ann_dir)
        else:
            names = sorted(p.stem for p in args.ann_dir.glob("*.xml"))
        if not names:
            raise DataError(f"{args.ann_dir}: no XML files")
        classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
        content, counts = convert(args.ann_dir, names, classes, args.img_suffix, args.strict)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(content))
    print(
        f"wrote {args.out}: {len(content['images'])} images, {len(content['annotations'])} "
        f"boxes, {len(content['categories'])} classes"
    )
    if counts:
        print(
            "left out or fixed: " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())),
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
