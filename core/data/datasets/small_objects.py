"""The small-objects set: large images with many small shapes, generated once, read as COCO."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from core.data.datasets.coco import CocoDataset
from core.data.datasets.shapes import generated_folder
from core.data.datasets.shapes_gen import (
    ANNOTATION_FILE,
    IMAGE_DIR,
    SHAPE_CLASSES,
    generate_small_objects,
)
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
        folder = generated_folder("small_objects", "small-objects set", split, data_root,
                                  generate_small_objects, params)
        self.folder = folder
        super().__init__(ann_file=str(folder / ANNOTATION_FILE),
                         img_dir=str(folder / IMAGE_DIR), pipeline=pipeline)
