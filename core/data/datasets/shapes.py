"""The embedded shapes dataset: generated once from a seed, then read as COCO."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from core.data.datasets.coco import CocoDataset
from core.data.datasets.shapes_gen import (
    ANNOTATION_FILE,
    GENERATOR_VERSION,
    IMAGE_DIR,
    SHAPE_CLASSES,
    ensure_generated,
    generate,
)
from core.errors import DataError
from core.registry import component

CACHE_ENV = "PLUGDET_CACHE"


def default_cache_root() -> Path:
    """``$PLUGDET_CACHE``, else ``$XDG_CACHE_HOME/plugdet``, else ``~/.cache/plugdet``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "plugdet"


def generated_folder(kind: str, what: str, split: str, data_root: str,
                     generator: Callable[..., None], params: dict[str, Any]) -> Path:
    """The folder of a generated set, ``<root>/<kind>/<split>-<digest of params>``, written by
    ``generator(folder, **params)`` unless it exists.

    :raises DataError: the folder cannot be written, naming the setting that moves it."""
    key = json.dumps({**params, "version": GENERATOR_VERSION}, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    root = Path(data_root).expanduser() if data_root else default_cache_root()
    try:
        return ensure_generated(root / kind / f"{split}-{digest}", generator, **params)
    except OSError as exc:
        setting = "data_root" if data_root else f"${CACHE_ENV}"
        raise DataError(
            f"cannot write the generated {what} into {exc.filename or root}: "
            f"{exc.strerror or exc}; set {setting} to a writable folder") from exc


class ShapesDataset(CocoDataset):
    """Circles, squares, triangles, stars and crosses on textured backgrounds.

    Generated deterministically from ``(seed, split)`` into
    ``data_root/shapes/<split>-<parameters hash>/`` (``annotations.json`` + ``images/``) the
    first time it is needed, then read exactly like :class:`CocoDataset`. ``train``, ``val``
    and ``test`` use disjoint random streams.

    :param num_images: number of images.
    :param image_size: side of the square images in pixels.
    :param seed: generator seed.
    :param split: ``"train"``, ``"val"`` or ``"test"``.
    :param object_size: range of object sizes (box side) in pixels.
    :param max_objects: at most this many objects per image (at least one).
    :param data_root: cache folder; ``""`` uses :func:`default_cache_root`.
    :param filter_empty_gt: as in :class:`CocoDataset`.
    :param strict: as in :class:`CocoDataset`.
    :param pipeline: transforms applied to every sample.
    :param with_mask: write and read each shape's polygon as its instance mask (the same
        images and boxes, generated into a folder of their own).
    """

    #: The class names, known without generating the data.
    CLASSES = SHAPE_CLASSES

    def __init__(
        self,
        num_images: int = 512,
        image_size: int = 256,
        seed: int = 0,
        split: Literal["train", "val", "test"] = "train",
        object_size: tuple[int, int] = (24, 96),
        max_objects: int = 5,
        data_root: str = "",
        filter_empty_gt: bool = False,
        strict: bool = False,
        pipeline: Annotated[list[Any], component("transform")] = [],  # noqa: B006
        with_mask: bool = False,
    ) -> None:
        if num_images <= 0 or image_size <= 0 or max_objects <= 0:
            raise ValueError("num_images, image_size and max_objects must be positive")
        if not 0 < object_size[0] <= object_size[1] < image_size:
            raise ValueError(
                f"object_size {object_size} must be increasing and below image_size {image_size}"
            )
        params = {
            "num_images": num_images,
            "image_size": image_size,
            "seed": seed,
            "split": split,
            "object_size": tuple(object_size),
            "max_objects": max_objects,
            **({"with_mask": True} if with_mask else {}),
        }
        folder = generated_folder("shapes", "shapes dataset", split, data_root, generate, params)
        self.folder = folder
        super().__init__(
            ann_file=str(folder / ANNOTATION_FILE),
            img_dir=str(folder / IMAGE_DIR),
            filter_empty_gt=filter_empty_gt,
            strict=strict,
            pipeline=pipeline,
            with_mask=with_mask,
        )
