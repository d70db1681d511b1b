"""Pascal VOC XML dataset, in the VOC2007/2012 layout or a flat one.

VOC layout (defaults)::

    data_root/Annotations/NAME.xml  data_root/JPEGImages/NAME.jpg
    data_root/ImageSets/Main/trainval.txt

Flat layout, e.g. ``ann_dir = "annotations"``, ``img_dir = "images"``,
``split_file = "train.txt"``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from core.data.datasets.base import DetDataset, resolve_path
from core.data.datasets.coco import check_box
from core.data.datasets.image_size import ExifMode, ImageSize, MismatchMode, scale_box
from core.data.datasets.index_cache import IndexCache
from core.data.datasets.list_files import read_list_file
from core.data.datasets.records import AnnotatedBox, ImageRecord, record_from_boxes
from core.data.datasets.voc_xml import parse_voc_xml
from core.errors import DataError
from core.registry import component

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip


#: the membership column of per-class VOC split files (``NAME  1``, ``NAME -1``).
FLAG_COLUMN = re.compile(r"^(?P<name>.*\S)\s+(?:-1|0|1)$")


def read_split(path: Path, ann_dir: Path | None = None) -> list[str]:
    """Image names listed one per line (UTF-8); missing or empty files raise.

    A line is one name, spaces included. A trailing ``1``/``0``/``-1`` column (per-class
    split files) is dropped unless ``ann_dir`` holds an annotation named by the whole line.
    """
    if not path.is_file():
        raise DataError(f"{path}: split file not found (cwd: {Path.cwd()})")
    names = []
    for name in read_list_file(path, "split file"):
        flagged = FLAG_COLUMN.match(name)
        if flagged and not (ann_dir is not None and (ann_dir / f"{name}.xml").is_file()):
            name = flagged["name"]
        names.append(name)
    if not names:
        raise DataError(f"{path}: split file lists no images")
    return names


class VocDataset(DetDataset):
    """Images and boxes of Pascal VOC XML files.

    ``difficult`` objects become ignore regions. An XML file without any ``<object>`` is
    taken for a broken annotation (the image is left out and counted) unless
    ``keep_background``. Labels follow the order of ``classes``;
    ``label_to_cat_id`` is ``label + 1``. Objects of other classes, degenerate boxes, unreadable
    XML and missing files are skipped and counted in ``dataset.skipped`` (or raise with
    ``strict``); boxes partly outside the image are clipped.

    :param data_root: dataset folder, relative to the working directory unless absolute.
    :param ann_dir: folder of ``NAME.xml`` files (relative to ``data_root``).
    :param img_dir: folder of the images (relative to ``data_root``).
    :param split_file: file listing the image names (relative to ``data_root``); ``""`` uses
        every XML file of ``ann_dir``.
    :param classes: class names.
    :param img_suffix: image file suffix when the XML names no existing file.
    :param filter_empty_gt: leave out images without any (non-difficult) box.
    :param keep_background: keep images whose XML has no ``<object>`` as negatives (no
        boxes); ``filter_empty_gt`` still leaves them out.
    :param min_size: leave out images whose shorter side is below this.
    :param strict: raise :class:`DataError` on the first bad item instead of skipping it.
    :param exif_orientation: ``"auto"`` (default): turn an image by its EXIF orientation when
        that makes its size agree with ``<size>``; ``"apply"``: always; ``"ignore"``: never.
    :param size_mismatch: an image whose size still disagrees with ``<size>`` is skipped
        (``"skip"``, counted as ``size_mismatch``) or its boxes are scaled to the file
        (``"rescale"``); see :mod:`core.data.datasets.image_size`.
    :param pipeline: transforms applied to every sample.
    :param check_images: look at every image file while building (it exists; its header
        agrees with ``<size>``, see ``exif_orientation``). ``False`` trusts the XML: the image
        is ``<filename>`` (else ``NAME`` + ``img_suffix``) of size ``<size>``; only an image
        without ``<size>`` is read; a missing or unreadable image is found when loaded and
        replaced like any bad sample.
    :param cache_index: reuse the index cached by an earlier build with the same split file,
        XML files and options (and, with ``check_images``, unchanged image files), else save
        it (see :mod:`core.data.datasets.index_cache`).
    """

    def __init__(
        self,
        data_root: str,
        ann_dir: str = "Annotations",
        img_dir: str = "JPEGImages",
        split_file: str = "ImageSets/Main/trainval.txt",
        classes: list[str] = list(VOC_CLASSES),  # noqa: B006 (config default)
        img_suffix: str = ".jpg",
        filter_empty_gt: bool = False,
        keep_background: bool = False,
        min_size: int = 0,
        strict: bool = False,
        exif_orientation: ExifMode = "auto",
        size_mismatch: MismatchMode = "skip",
        pipeline: Annotated[list[Any], component("transform")] = [],  # noqa: B006
        check_images: bool = True,
        cache_index: bool = True,
    ) -> None:
        super().__init__(pipeline, strict, exif_orientation, size_mismatch)
        root = Path(data_root).expanduser()
        if not root.is_dir():
            raise DataError(f"{root}: VOC data_root not found (cwd: {Path.cwd()})")
        if not classes:
            raise DataError(f"{root}: classes must not be empty")
        self.classes = tuple(classes)
        self.label_to_cat_id = {label: label + 1 for label in range(len(self.classes))}
        self.ann_dir = resolve_path(ann_dir, data_root)
        self.img_dir = resolve_path(img_dir, data_root)
        self.img_suffix = img_suffix
        self.filter_empty_gt = filter_empty_gt
        self.keep_background = keep_background
        self.min_size = min_size
        self.check_images = check_images
        self._skips.source = f"VocDataset({root})"
        split_path = resolve_path(split_file, data_root) if split_file else None
        if split_path is not None:
            names = read_split(split_path, self.ann_dir)
        else:
            names = sorted(p.stem for p in self.ann_dir.glob("*.xml"))
            if not names:
                raise DataError(f"{self.ann_dir}: no XML files")
        cache = IndexCache(type(self).__name__, {
            "data_root": [str(root), os.path.abspath(root)],
            "ann_dir": [str(self.ann_dir), os.path.abspath(self.ann_dir)],
            "img_dir": [str(self.img_dir), os.path.abspath(self.img_dir)],
            "classes": list(self.classes), "img_suffix": img_suffix,
            "filter_empty_gt": filter_empty_gt, "keep_background": keep_background,
            "min_size": min_size, "strict": strict, "exif_orientation": exif_orientation,
            "size_mismatch": size_mismatch, "check_images": check_images, "names": names,
        }, [*([split_path] if split_path else []),
            *(self.ann_dir / f"{name}.xml" for name in names)]) if cache_index else None
        if self.restore_index(cache, str(root)):
            return
        label_of = {name: label for label, name in enumerate(self.classes)}
        records = []
        for img_id, name in enumerate(names):
            record = self._record(img_id, name, label_of)
            if record is not None:
                records.append(record)
        self.set_records(records, str(root))
        self.save_index(cache)

    def _image_path(self, name: str, listed: str | None) -> Path:
        if listed and (not self.check_images or self._image_exists(self.img_dir / listed)):
            return self.img_dir / listed
        return self.img_dir / f"{name}{self.img_suffix}"

    def _record(self, img_id: int, name: str, label_of: dict[str, int]) -> ImageRecord | None:
        xml_path = self.ann_dir / f"{name}.xml"
        if not xml_path.is_file():
            self._skips.skip("missing_annotation", f"{xml_path}: annotation of {name!r} not found")
            return None
        try:
            annotation = parse_voc_xml(xml_path)
        except DataError as exc:
            self._skips.skip("bad_xml", str(exc))
            return None
        img_path = self._image_path(name, annotation.filename)
        if self.check_images and not self._image_exists(img_path):
            self._skips.skip("missing_image", f"{xml_path}: image file {img_path} not found")
            return None
        recorded = ((annotation.width, annotation.height)
                    if annotation.width > 0 and annotation.height > 0 else None)
        if self.check_images or recorded is None:
            if not self.check_images:
                self._image_exists(img_path)  # the size read from it is cached
            size = self._image_size(recorded, img_path, str(xml_path))
        else:
            size = ImageSize(*recorded)
        if size is None:
            return None
        width, height = size.width, size.height
        if min(width, height) < self.min_size:
            self._skips.omit("small_image", f"{xml_path}: {width}x{height} below min_size")
            return None
        if not annotation.objects and not self.keep_background:
            self._skips.skip("no_objects", f"{xml_path}: XML has no <object>")
            return None
        objects: list[AnnotatedBox] = []
        for index, obj in enumerate(annotation.objects):
            where = f"{xml_path}: object {index}"
            if obj.name not in label_of:
                self._skips.skip(
                    "unknown_class",
                    f"{where}: class {obj.name!r} is not one of {list(self.classes)}",
                )
                continue
            if obj.box is None:
                self._skips.skip(
                    "malformed_box", f"{where}: <bndbox> needs numeric xmin, ymin, xmax, ymax"
                )
                continue
            box = check_box(scale_box(obj.box, size.scale), width, height, where, self._skips,
                            self.repaired, key=str(xml_path))
            if box is not None:
                objects.append(AnnotatedBox(box, label_of[obj.name], ignore=obj.difficult))
        record = record_from_boxes(img_id, str(img_path), height, width, objects,
                                   size.exif_transpose)
        if self.filter_empty_gt and not len(record.boxes):
            self._skips.omit("empty_gt", f"{xml_path}: no boxes (filter_empty_gt = true)")
            return None
        return record
