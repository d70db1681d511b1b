"""Reading an ultralytics dataset YAML: the root, the image lists of a split, the class names.

Format::

    path: ../datasets/raccoon      # dataset root (relative to the YAML's folder)
    train: images/train            # folder, .txt list of image paths, or a list of those
    val: images/val
    names: {0: raccoon}            # or a list: [raccoon]

Labels of ``ROOT/images/train/a.jpg`` are in ``ROOT/labels/train/a.txt`` (the last
``/images/`` of the path replaced by ``/labels/``; an image path without ``/images/`` keeps
its label file beside it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from core.data.datasets.list_files import read_list_file
from core.errors import DataError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def read_yaml(path: Path) -> dict[str, Any]:
    """The YAML mapping of ``path``; missing, unreadable or non-mapping files raise."""
    if not path.is_file():
        raise DataError(f"{path}: dataset YAML not found (cwd: {Path.cwd()})")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a valid YAML file ({exc})") from exc
    if not isinstance(content, dict):
        raise DataError(f"{path}: expected a mapping with path, train, val and names")
    return content


def class_names(content: dict[str, Any], source: Path) -> tuple[str, ...]:
    """``names`` as a tuple indexed by class id (a list, or a dict with keys ``0..K-1``)."""
    names = content.get("names")
    if isinstance(names, list) and names:
        result = tuple(str(n) for n in names)
    elif isinstance(names, dict) and names:
        keys = sorted(names, key=lambda k: int(k) if str(k).isdigit() else -1)
        if [str(k) for k in keys] != [str(i) for i in range(len(names))]:
            raise DataError(f"{source}: names: class ids must be 0..{len(names) - 1}, "
                            f"got {list(names)}")
        result = tuple(str(names[k]) for k in keys)
    else:
        raise DataError(f"{source}: names: expected a non-empty list or {{id: name}} mapping, "
                        f"got {names!r}")
    declared = content.get("nc")
    if declared is not None and declared != len(result):
        raise DataError(f"{source}: nc = {declared} but names lists {len(result)} classes")
    return result


def dataset_root(content: dict[str, Any], source: Path) -> Path:
    """``path`` resolved against the YAML's folder (the folder itself when absent)."""
    root = content.get("path") or "."
    if not isinstance(root, str):
        raise DataError(f"{source}: path: expected a string, got {root!r}")
    candidate = Path(root).expanduser()
    return candidate if candidate.is_absolute() else source.parent / candidate


def _list_file(path: Path) -> list[Path]:
    """Image paths listed one per line; relative ones are relative to the list's folder."""
    images = []
    for name in read_list_file(path, "image list"):
        candidate = Path(name).expanduser()
        images.append(candidate if candidate.is_absolute() else path.parent / candidate)
    return images


def split_images(content: dict[str, Any], split: str, source: Path) -> list[Path]:
    """The image paths of ``split`` (sorted within each folder, list files in their order)."""
    entries = content.get(split)
    if entries is None:
        known = [k for k in ("train", "val", "test") if content.get(k)]
        raise DataError(f"{source}: no {split!r} split (the file has {known})")
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise DataError(f"{source}: {split}: expected a path or a list of paths, got {entries!r}")
    root = dataset_root(content, source)
    images: list[Path] = []
    for entry in entries:
        location = Path(entry).expanduser()
        location = location if location.is_absolute() else root / location
        if location.is_dir():
            images.extend(sorted(p for p in location.rglob("*")
                                 if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()))
        elif location.is_file() and location.suffix == ".txt":
            images.extend(_list_file(location))
        else:
            raise DataError(f"{source}: {split}: {location} is neither an image folder nor a "
                            ".txt list of images")
    if not images:
        raise DataError(f"{source}: {split}: no images in {entries}")
    return images


def label_path(image: Path) -> Path:
    """The label file of ``image``: the last ``/images/`` becomes ``/labels/``, suffix .txt."""
    text = str(image)
    marker = f"{os.sep}images{os.sep}"
    if marker in text:
        head, tail = text.rsplit(marker, 1)
        text = f"{head}{os.sep}labels{os.sep}{tail}"
    return Path(text).with_suffix(".txt")
