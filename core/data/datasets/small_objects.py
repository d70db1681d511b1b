"""The small-objects set: large images with many small shapes, generated once, read as COCO."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from core.data.datasets.coco import CocoDataset
from core.data.datasets.shapes import CACHE_ENV, default_cache_root
from core.data.datasets.shapes_gen import (
    ANNOTATION_FILE,
    GENERATOR_VERSION,
    IMAGE_DIR,
    SHAPE_CLASSES,
    ensure_generated,
    generate_small_objects,
)
from core.errors import DataError
from core.registry import component


class SmallObjectsDataset(CocoDataset):
    """The shapes set's five classes drawn small on large images (a sliced-inference demo).

    Generated deterministically from ``(seed, split)`` into
    ``data_root/small_objects/<split>-<parameters hash>/`` the first time it is needed, then
    read exactly like :class:`CocoDataset`.

    :param num_images: number of images.
    :param image_size: ``(lo, hi)``: each image's height and width are drawn from it.
    :param seed: generator seed.
    :param split: ``"train"``, ``"val"`` or ``"test"``.
    :param object_size: range of object sizes (box side) in pixels.
    :param objects: ``(lo, hi)`` objects per image (fewer where they find no room).
    :param data_root: cache folder; ``""`` uses :func:`default_cache_root`.
    :param pipeline: transforms applied to every sample.
    """

    CLASSES = SHAPE_CLASSES

    def __init__(
        self,
        num_images: int = 32,
        image_size: tuple[int, int] = (1024, 2048),
        seed: int = 0,
        split: Literal["train", "val", "test"] = "train",
        object_size: tuple[int, int] = (8, 32),
        objects: tuple[int, int] = (50, 200),
        data_root: str = "",
        pipeline: Annotated[list[Any], component("transform")] = [],  # noqa: B006
    ) -> None:
        if num_images <= 0 or not 0 < objects[0] <= objects[1]:
            raise ValueError("num_images must be positive and objects an increasing range")
        if not 0 < object_size[0] <= object_size[1] < image_size[0] <= image_size[1]:
            raise ValueError(f"object_size {object_size} and image_size {image_size} must be "
                             "increasing ranges, the objects smaller than the images")
        params = {"num_images": num_images, "image_size": tuple(image_size), "seed": seed,
                  "split": split, "object_size": tuple(object_size), "objects": tuple(objects)}
        key = json.dumps({**params, "version": GENERATOR_VERSION}, sort_keys=True)
        digest = hashlib.sha1(key.encode()).hexdigest()[:12]
        root = Path(data_root).expanduser() if data_root else default_cache_root()
        try:
            folder = ensure_generated(root / "small_objects" / f"{split}-{digest}",
                                      generate_small_objects, **params)
        except OSError as exc:
            setting = "data_root" if data_root else f"${CACHE_ENV}"
            raise DataError(
                f"cannot write the generated small-objects set into {exc.filename or root}: "
                f"{exc.strerror or exc}; set {setting} to a writable folder") from exc
        self.folder = folder
        super().__init__(ann_file=str(folder / ANNOTATION_FILE),
                         img_dir=str(folder / IMAGE_DIR), pipeline=pipeline)
