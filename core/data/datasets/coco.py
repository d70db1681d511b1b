"""COCO-format detection dataset (``instances_*.json``)."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any

from core.data.datasets.base import DetDataset, resolve_path
from core.data.datasets.image_size import ExifMode, MismatchMode, scale_box
from core.data.datasets.records import AnnotatedBox, ImageRecord, record_from_boxes
from core.data.datasets.skips import SkipLog
from core.errors import DataError
from core.registry import component


def load_json(path: Path) -> dict[str, Any]:
    """Read a JSON object; missing, empty or invalid files raise :class:`DataError`."""
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found (cwd: {Path.cwd()})")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise DataError(f"{path}: annotation file is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(
            f"{path}: expected a JSON object with 'images', 'annotations' and "
            f"'categories', got {type(data).__name__}"
        )
    return data


def box_from_xywh(value: Any) -> list[float] | None:
    """``[x, y, w, h]`` -> ``[x1, y1, x2, y2]``; ``None`` if not four finite numbers."""
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        return None
    try:
        x, y, w, h = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return None
    return [x, y, x + w, y + h]


def check_box(
    box: list[float],
    width: int,
    height: int,
    where: str,
    skips: SkipLog,
    repaired: dict[str, int],
    key: str | None = None,
) -> list[float] | None:
    """Clip a box partially outside the image; ``None`` (counted) if degenerate or outside.

    A clipped box is counted in ``repaired`` and named with ``where`` once per ``key`` (the
    annotation file; default ``where``).
    """
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        skips.skip("degenerate_box", f"{where}: box {box} has xmax <= xmin or ymax <= ymin")
        return None
    clipped = [
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
        min(max(x2, 0.0), width),
        min(max(y2, 0.0), height),
    ]
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        skips.skip("outside_box", f"{where}: box {box} lies outside the {width}x{height} image")
        return None
    if clipped != box:
        repaired["clipped_box"] = repaired.get("clipped_box", 0) + 1
        skips.note_repair(
            "clipped_box", where if key is None else key,
            f"{where}: box {[round(float(v), 2) for v in box]} reaches past the {width}x{height}"
            f" image; clipped to {[round(float(v), 2) for v in clipped]}",
        )
    return clipped


class CocoDataset(DetDataset):
    """Images and boxes of a COCO ``instances`` JSON file.

    Category ids map to contiguous labels ``0..K-1`` in category-id order (or in the order of
    ``classes``); ``dataset.label_to_cat_id`` maps back. ``iscrowd`` boxes become ignore
    regions. Boxes partly outside the image are clipped (counted in ``dataset.repaired``);
    degenerate boxes, unknown category or image ids and images with bad sizes are skipped and
    counted in ``dataset.skipped`` (or raise with ``strict``).

    :param ann_file: the JSON file (relative to ``data_root`` unless absolute).
    :param img_dir: folder of the images named by ``file_name`` (relative to ``data_root``).
    :param data_root: prefix of relative paths; itself relative to the working directory.
    :param classes: keep only these category names (labels follow this order).
    :param filter_empty_gt: leave out images without any (non-crowd) box.
    :param min_size: leave out images whose shorter side is below this.
    :param strict: raise :class:`DataError` on the first bad item instead of skipping it.
    :param exif_orientation: ``"auto"`` (default): turn an image by its EXIF orientation when
        that makes its size agree with ``width``/``height``; ``"apply"``: always;
        ``"ignore"``: never.
    :param size_mismatch: an image whose size still disagrees with ``width``/``height`` is
        skipped (``"skip"``, counted as ``size_mismatch``) or its boxes are scaled to the file
        (``"rescale"``); see :mod:`core.data.datasets.image_size`.
    :param pipeline: transforms applied to every sample.
    """

    def __init__(
        self,
        ann_file: str,
        img_dir: str = "",
        data_root: str = "",
        classes: list[str] | None = None,
        filter_empty_gt: bool = False,
        min_size: int = 0,
        strict: bool = False,
        exif_orientation: ExifMode = "auto",
        size_mismatch: MismatchMode = "skip",
        pipeline: Annotated[list[Any], component("transform")] = [],  # noqa: B006
    ) -> None:
        super().__init__(pipeline, strict, exif_orientation, size_mismatch)
        self.ann_file = resolve_path(ann_file, data_root)
        self.img_dir = resolve_path(img_dir, data_root)
        self.filter_empty_gt = filter_empty_gt
        self.min_size = min_size
        self._skips.source = f"{type(self).__name__}({self.ann_file})"
        data = load_json(self.ann_file)
        self._parse(data, classes)

    def _parse(self, data: dict[str, Any], classes: list[str] | None) -> None:
        where = str(self.ann_file)
        images = data.get("images")
        if not isinstance(images, list) or not images:
            raise DataError(f"{where}: no 'images' in the annotation file")
        categories = sorted(
            (c for c in data.get("categories", []) if isinstance(c, dict) and "id" in c),
            key=lambda c: c["id"],
        )
        if not categories:
            raise DataError(f"{where}: no 'categories' in the annotation file")
        names_by_id = {int(c["id"]): str(c.get("name", c["id"])) for c in categories}
        if classes is None:
            selected = list(names_by_id)
        else:
            ids_by_name = {name: cat_id for cat_id, name in names_by_id.items()}
            missing = [name for name in classes if name not in ids_by_name]
            if missing:
                raise DataError(
                    f"{where}: classes {missing} are not categories of the file "
                    f"(categories: {sorted(ids_by_name)})"
                )
            selected = [ids_by_name[name] for name in classes]
        self.classes = tuple(names_by_id[cat_id] for cat_id in selected)
        cat_to_label = {cat_id: label for label, cat_id in enumerate(selected)}
        self.label_to_cat_id = {label: cat_id for cat_id, label in cat_to_label.items()}

        image_by_id: dict[int, dict[str, Any]] = {}
        for image in images:
            if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
                self._skips.skip(
                    "bad_image_entry", f"{where}: image entry {image!r} lacks 'id' or 'file_name'"
                )
                continue
            image_by_id[int(image["id"])] = image
        anns_by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for ann in data.get("annotations", []):
            image_id = ann.get("image_id") if isinstance(ann, dict) else None
            if image_id not in image_by_id:
                ann_id = ann.get("id") if isinstance(ann, dict) else ann
                self._skips.skip(
                    "unknown_image_id",
                    f"{where}: annotation {ann_id!r} refers to unknown image id {image_id!r}",
                )
                continue
            anns_by_image[int(image_id)].append(ann)

        records = []
        for image_id, image in image_by_id.items():
            record = self._record(image, anns_by_image.get(image_id, []), names_by_id, cat_to_label)
            if record is not None:
                records.append(record)
        self.set_records(records, where)

    def _record(
        self,
        image: dict[str, Any],
        anns: list[dict[str, Any]],
        names_by_id: dict[int, str],
        cat_to_label: dict[int, int],
    ) -> ImageRecord | None:
        sample = f"{self.ann_file}: image {image['file_name']!r} (id {image['id']})"
        try:
            width, height = int(image["width"]), int(image["height"])
        except (KeyError, TypeError, ValueError):
            width = height = 0
        if width <= 0 or height <= 0:
            self._skips.skip("bad_image_size", f"{sample}: missing or invalid width/height")
            return None
        if min(width, height) < self.min_size:
            self._skips.omit(
                "small_image", f"{sample}: {width}x{height} is below min_size {self.min_size}"
            )
            return None
        img_path = self.img_dir / str(image["file_name"])
        if not img_path.is_file():
            self._skips.skip("missing_image", f"{sample}: image file {img_path} not found")
            return None
        size = self._image_size((width, height), img_path, sample)
        if size is None:
            return None
        width, height = size.width, size.height
        objects: list[AnnotatedBox] = []
        for ann in anns:
            ann_where = f"{sample}, annotation {ann.get('id')}"
            cat_id = ann.get("category_id")
            if cat_id not in names_by_id:
                self._skips.skip("unknown_category", f"{ann_where}: unknown category id {cat_id}")
                continue
            if cat_id not in cat_to_label:
                continue  # a category outside the selected classes
            box = box_from_xywh(ann.get("bbox"))
            if box is None:
                self._skips.skip(
                    "malformed_box", f"{ann_where}: bbox {ann.get('bbox')!r} is not [x, y, w, h]"
                )
                continue
            box = check_box(scale_box(box, size.scale), width, height, ann_where, self._skips,
                            self.repaired, key=sample)
            if box is not None:
                crowd = bool(ann.get("iscrowd", 0))
                objects.append(AnnotatedBox(box, cat_to_label[cat_id], ignore=crowd))
        record = record_from_boxes(int(image["id"]), str(img_path), height, width, objects,
                                   size.exif_transpose)
        if self.filter_empty_gt and not len(record.boxes):
            self._skips.omit("empty_gt", f"{sample}: no boxes (filter_empty_gt = true)")
            return None
        return record
