"""COCO-format detection and instance segmentation dataset (``instances_*.json``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import attrs
import numpy as np

from core.data.datasets.base import DetDataset, resolve_path
from core.data.datasets.coco_columns import (
    BAD_MASK,
    CLIPPED,
    DEGENERATE,
    MALFORMED,
    OK,
    OUTSIDE,
    REPORTED,
    UNKNOWN_CATEGORY,
    UNKNOWN_LABEL,
    UNSELECTED,
    UNSELECTED_LABEL,
    check_boxes,
    column,
    path_joiner,
    xyxy_from_xywh,
)
from core.data.datasets.coco_masks import inside_image, read_segmentation
from core.data.datasets.image_size import ExifMode, MismatchMode
from core.data.datasets.index_cache import IndexCache
from core.data.datasets.mask_columns import InstancePolygons
from core.data.datasets.records import RecordIndex
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


@attrs.define
class ImageTable:
    """The image entries after their checks, by position in the file (``N`` entries).

    :ivar keep: ``(N,)`` bool, usable. :ivar widths: ``(N,)``; ``heights``: ``(N,)``; the
        size to use. :ivar scale: ``(N, 2)`` float64 ``(sx, sy)`` of recorded box coordinates.
    :ivar exif: ``(N,)`` bool, decode turned. :ivar paths: image paths (``""`` if unused).
    :ivar events: what to count and log for an entry, run in file order with its boxes'.
    """

    keep: np.ndarray
    widths: np.ndarray
    heights: np.ndarray
    scale: np.ndarray
    exif: np.ndarray
    paths: list[str]
    events: dict[int, Callable[[], object]]


class CocoDataset(DetDataset):
    """Images and boxes of a COCO ``instances`` JSON file.

    Category ids map to contiguous labels ``0..K-1`` in category-id order (or in the order of
    ``classes``); ``dataset.label_to_cat_id`` maps back. ``iscrowd`` boxes become ignore
    regions. Boxes partly outside the image are clipped (counted in ``dataset.repaired``);
    degenerate boxes, unknown category or image ids and images with bad sizes are skipped and
    counted in ``dataset.skipped`` (or raise with ``strict``). The annotations are checked as
    NumPy columns; the parsed index is cached (see :mod:`core.data.datasets.index_cache`).

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
    :param check_images: look at every image file while building (it exists; its header
        agrees with ``width``/``height``, see ``exif_orientation``). ``False`` trusts
        ``file_name``, ``width`` and ``height`` (no file is opened; a missing or unreadable
        image is found when loaded and replaced like any bad sample), and
        ``exif_orientation``/``size_mismatch`` then have no effect.
    :param cache_index: reuse the index cached by an earlier build with the same file and
        options (and, with ``check_images``, unchanged image files), else save it.
    :param with_mask: read each annotation's ``segmentation`` as the instance's polygon mask
        (RLE traced to polygons, see :mod:`core.data.datasets.coco_masks`; crowd regions too,
        as masks of the ignore regions); an annotation without a usable mask is skipped
        (``bad_mask``).
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
        check_images: bool = True,
        cache_index: bool = True,
        with_mask: bool = False,
    ) -> None:
        super().__init__(pipeline, strict, exif_orientation, size_mismatch)
        self.with_mask = with_mask
        self.ann_file = resolve_path(ann_file, data_root)
        self.img_dir = resolve_path(img_dir, data_root)
        self.filter_empty_gt = filter_empty_gt
        self.min_size = min_size
        self.check_images = check_images
        self._skips.source = f"{type(self).__name__}({self.ann_file})"
        cache = IndexCache(type(self).__name__, {
            "ann_file": [str(self.ann_file), os.path.abspath(self.ann_file)],
            "img_dir": [str(self.img_dir), os.path.abspath(self.img_dir)],
            "classes": classes, "filter_empty_gt": filter_empty_gt, "min_size": min_size,
            "strict": strict, "exif_orientation": exif_orientation,
            "size_mismatch": size_mismatch, "check_images": check_images,
            "with_mask": with_mask,
        }, [self.ann_file]) if cache_index else None
        if self.restore_index(cache, str(self.ann_file)):
            return
        data = load_json(self.ann_file)
        self._parse(data, classes)
        self.save_index(cache)

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
        entries = list(image_by_id.values())
        anns = list(data.get("annotations", []))
        position = {image_id: pos for pos, image_id in enumerate(image_by_id)}
        ann_pos = np.fromiter((position.get(i, -1) for i in column(anns, "image_id")),
                              dtype=np.int64, count=len(anns))
        for row in np.flatnonzero(ann_pos < 0).tolist():
            ann = anns[row]
            image_id, ann_id = (ann.get("image_id"), ann.get("id")) if isinstance(ann, dict) \
                else (None, ann)
            self._skips.skip(
                "unknown_image_id",
                f"{where}: annotation {ann_id!r} refers to unknown image id {image_id!r}",
            )
        table = self._image_table(entries)

        # every annotation of a usable image, in file order, with its status
        rows = np.flatnonzero((ann_pos >= 0) & table.keep[ann_pos])
        pos = ann_pos[rows]
        label_of = {cat_id: cat_to_label.get(cat_id, UNSELECTED_LABEL) for cat_id in names_by_id}
        labels = np.fromiter((label_of.get(anns[i].get("category_id"), UNKNOWN_LABEL)
                              for i in rows.tolist()),
                             dtype=np.int64, count=len(rows))
        boxes, malformed = xyxy_from_xywh([anns[i].get("bbox") for i in rows.tolist()])
        boxes *= table.scale[pos][:, [0, 1, 0, 1]]
        status, clipped = check_boxes(boxes, table.widths[pos], table.heights[pos])
        status[malformed] = MALFORMED
        status[labels == UNSELECTED_LABEL] = UNSELECTED
        status[labels == UNKNOWN_LABEL] = UNKNOWN_CATEGORY
        crowd = np.fromiter((bool(anns[i].get("iscrowd", 0)) for i in rows.tolist()),
                            dtype=bool, count=len(rows))
        kept = (status == OK) | (status == CLIPPED)
        masks: list[InstancePolygons] = []
        if self.with_mask:
            masks, bad = self._read_masks(entries, anns, rows, pos, kept, table)
            status[bad] = BAD_MASK
            kept &= ~bad
        gt, ignored = kept & ~crowd, kept & crowd
        empty = np.zeros(len(entries), dtype=bool)
        if self.filter_empty_gt:
            empty = table.keep & (np.bincount(pos[gt], minlength=len(entries)) == 0)

        self._report(entries, table, empty, anns, rows, pos, status, boxes, clipped)
        usable = table.keep & ~empty
        new_index = np.cumsum(usable) - 1
        gt &= usable[pos]
        ignored &= usable[pos]
        index = RecordIndex.from_columns(
            img_ids=np.array(list(image_by_id), dtype=np.int64)[usable],
            heights=table.heights[usable],
            widths=table.widths[usable],
            paths=[table.paths[p] for p in np.flatnonzero(usable).tolist()],
            exif_transpose=table.exif[usable],
            box_image=new_index[pos[gt]],
            boxes=clipped[gt],
            labels=labels[gt],
            ignore_image=new_index[pos[ignored]],
            ignore_boxes=clipped[ignored],
            ignore_labels=labels[ignored],
            masks=[masks[i] for i in np.flatnonzero(gt).tolist()] if self.with_mask else None,
            ignore_masks=[masks[i] for i in np.flatnonzero(ignored).tolist()]
            if self.with_mask else None,
        )
        self.set_records(index, where)

    def _read_masks(self, entries: list[dict[str, Any]], anns: list[Any], rows: np.ndarray,
                    pos: np.ndarray, kept: np.ndarray, table: ImageTable,
                    ) -> tuple[list[InstancePolygons], np.ndarray]:
        """The polygons of the ``kept`` annotations in original pixels, cut to the image
        (``[]`` for the others), and the ``(R,)`` bool mask of the kept ones whose
        segmentation is unusable (counted and named as ``bad_mask``).

        :param rows: ``(R,)`` indices in ``anns``; ``pos``, ``kept``: ``(R,)`` their image
            positions and whether their boxes are kept.
        """
        masks: list[InstancePolygons] = [[] for _ in range(len(rows))]
        bad = np.zeros(len(rows), dtype=bool)
        for row in np.flatnonzero(kept).tolist():
            ann, image_pos = anns[int(rows[row])], int(pos[row])
            image = entries[image_pos]
            polygons = read_segmentation(ann.get("segmentation"), int(image["height"]),
                                         int(image["width"]))
            if isinstance(polygons, str):
                bad[row] = True
                self._skips.skip("bad_mask", f"{self._sample(image)}, annotation "
                                             f"{ann.get('id')}: {polygons}")
                continue
            scale = table.scale[image_pos]
            if not (scale == 1.0).all():
                polygons = [(p * scale).astype(np.float32) for p in polygons]
            size = (int(table.widths[image_pos]), int(table.heights[image_pos]))
            polygons = inside_image(polygons, *size)
            if not polygons:
                bad[row] = True
                self._skips.skip("bad_mask", f"{self._sample(image)}, annotation "
                                             f"{ann.get('id')}: the mask lies outside the "
                                             f"{size[0]}x{size[1]} image")
                continue
            masks[row] = polygons
        return masks, bad

    def _sample(self, image: dict[str, Any]) -> str:
        return f"{self.ann_file}: image {image['file_name']!r} (id {image['id']})"

    def _image_table(self, entries: list[dict[str, Any]]) -> ImageTable:
        """Check every image entry (``check_images``: its file too); count nothing yet."""
        num = len(entries)
        table = ImageTable(keep=np.zeros(num, dtype=bool), widths=np.zeros(num, dtype=np.int64),
                           heights=np.zeros(num, dtype=np.int64),
                           scale=np.ones((num, 2), dtype=np.float64),
                           exif=np.zeros(num, dtype=bool), paths=[""] * num, events={})
        join = path_joiner(self.img_dir)
        for pos, image in enumerate(entries):
            try:
                width, height = int(image["width"]), int(image["height"])
            except (KeyError, TypeError, ValueError):
                width = height = 0
            if width <= 0 or height <= 0:
                table.events[pos] = partial(self._skips.skip, "bad_image_size",
                                            f"{self._sample(image)}: missing or invalid "
                                            "width/height")
                continue
            if min(width, height) < self.min_size:
                table.events[pos] = partial(self._skips.omit, "small_image",
                                            f"{self._sample(image)}: {width}x{height} is below "
                                            f"min_size {self.min_size}")
                continue
            img_path = join(image["file_name"])
            if self.check_images:
                sample = self._sample(image)
                if not self._image_exists(img_path):
                    table.events[pos] = partial(self._skips.skip, "missing_image",
                                                f"{sample}: image file {img_path} not found")
                    continue
                check = self._check_size((width, height), Path(img_path), sample)
                if check.size is None or check.warning is not None or check.size.exif_transpose:
                    table.events[pos] = partial(self._count_size_check, check)
                if check.size is None:
                    continue
                width, height = check.size.width, check.size.height
                table.exif[pos] = check.size.exif_transpose
                if check.size.scale is not None:
                    table.scale[pos] = check.size.scale
            table.keep[pos] = True
            table.widths[pos], table.heights[pos] = width, height
            table.paths[pos] = img_path
        return table

    def _report(self, entries: list[dict[str, Any]], table: ImageTable, empty: np.ndarray,
                anns: list[Any], rows: np.ndarray, pos: np.ndarray, status: np.ndarray,
                boxes: np.ndarray, clipped: np.ndarray) -> None:
        """Count and log, in file order, the image events and the reported annotations.

        :param rows: ``(R,)`` indices in ``anns`` of the annotations of usable images;
            ``pos``, ``status``: ``(R,)`` their image positions and statuses; ``boxes``,
            ``clipped``: ``(R, 4)`` their (scaled) and clipped boxes.
        """
        # a clipped box is named once per image for the first images only: those are the
        # first clipped box of each of the first images that have one
        clipped_rows = np.flatnonzero(status == CLIPPED)
        first = np.unique(pos[clipped_rows], return_index=True)[1]
        named = clipped_rows[first[: self._skips.max_messages + 1]]
        reported = np.isin(status, REPORTED) & (status != CLIPPED)
        reported[named] = True
        by_image: dict[int, list[int]] = {}
        for row in np.flatnonzero(reported).tolist():
            by_image.setdefault(int(pos[row]), []).append(row)
        events = set(table.events) | set(by_image) | set(np.flatnonzero(empty).tolist())
        for image_pos in sorted(events):
            if image_pos in table.events:
                table.events[image_pos]()
            sample = self._sample(entries[image_pos])
            for row in by_image.get(image_pos, ()):
                self._report_annotation(anns[int(rows[row])], int(status[row]), sample,
                                        boxes[row], clipped[row],
                                        (int(table.widths[image_pos]),
                                         int(table.heights[image_pos])), len(clipped_rows))
            if empty[image_pos]:
                self._skips.omit("empty_gt", f"{sample}: no boxes (filter_empty_gt = true)")

    def _report_annotation(self, ann: dict[str, Any], status: int, sample: str,
                           box: np.ndarray, clipped: np.ndarray, size: tuple[int, int],
                           num_clipped: int) -> None:
        """Count and log one annotation of status in :data:`REPORTED`, naming it; the first
        clipped one counts all ``num_clipped``."""
        where = f"{sample}, annotation {ann.get('id')}"
        if status == UNKNOWN_CATEGORY:
            self._skips.skip("unknown_category",
                             f"{where}: unknown category id {ann.get('category_id')}")
            return
        if status == MALFORMED:
            self._skips.skip("malformed_box",
                             f"{where}: bbox {ann.get('bbox')!r} is not [x, y, w, h]")
            return
        width, height = size
        values = box.tolist()
        if status == DEGENERATE:
            self._skips.skip("degenerate_box",
                             f"{where}: box {values} has xmax <= xmin or ymax <= ymin")
        elif status == OUTSIDE:
            self._skips.skip("outside_box",
                             f"{where}: box {values} lies outside the {width}x{height} image")
        else:
            self.repaired.setdefault("clipped_box", num_clipped)
            self._skips.note_repair(
                "clipped_box", sample,
                f"{where}: box {[round(v, 2) for v in values]} reaches past the "
                f"{width}x{height} image; clipped to {[round(v, 2) for v in clipped.tolist()]}",
            )
