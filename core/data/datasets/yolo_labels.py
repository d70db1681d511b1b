"""Finding the label file of each image of a YOLO split.

The labels of ``.../images/train/a.jpg`` are in ``.../labels/train/a.txt``
(:func:`~core.data.datasets.yolo_yaml.label_path`), and a missing label file makes a
background image. File names are case-sensitive on most systems, but an image renamed on a
case-insensitive one (or by the export of a labelling tool) can differ from its label file
only in case; :class:`LabelFinder` finds such label files, and lists the label files that have
no image at all, so that neither goes unnoticed.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from core.data.datasets.yolo_yaml import IMAGE_SUFFIXES, label_path

#: the list of class names that labelling tools (labelImg) write beside the label files.
CLASS_LIST = "classes.txt"
LABEL_SUFFIX = ".txt"


class LabelMatch(NamedTuple):
    """Where the labels of an image are.

    :ivar path: the label file to read (when it does not exist: a background image), or
        ``None`` when several files could be it.
    :ivar problem: why ``path`` is not the name the image gives, or why there is none.
    """

    path: Path | None
    problem: str = ""


def _file_names(folder: Path) -> list[str]:
    try:
        return [entry.name for entry in os.scandir(folder) if entry.is_file()]
    except OSError:
        return []


class _Folder:
    """The label files of one label folder against the images of its image folder."""

    def __init__(self, image_dir: Path, label_dir: Path, listed_stems: Iterable[str]) -> None:
        self.image_dir, self.label_dir = image_dir, label_dir
        stems = {Path(n).stem for n in _file_names(image_dir)
                 if Path(n).suffix.lower() in IMAGE_SUFFIXES}
        stems.update(listed_stems)
        self.images_by_lower = Counter(stem.lower() for stem in stems)
        labels = [n for n in _file_names(label_dir)
                  if n.lower().endswith(LABEL_SUFFIX) and n != CLASS_LIST]
        #: label files that no image names exactly, by lower-case name
        self.unclaimed: dict[str, list[str]] = defaultdict(list)
        for name in labels:
            if not (name.endswith(LABEL_SUFFIX) and name[: -len(LABEL_SUFFIX)] in stems):
                self.unclaimed[name.lower()].append(name)
        self.orphans = sorted(n for n in labels
                              if n[: -len(LABEL_SUFFIX)].lower() not in self.images_by_lower)


class LabelFinder:
    """The label files of a split's images, matched by name and, failing that, ignoring case.

    :param images: the image paths of the split.
    """

    def __init__(self, images: Iterable[Path]) -> None:
        listed: dict[tuple[Path, Path], set[str]] = defaultdict(set)
        for image in images:
            listed[(image.parent, label_path(image).parent)].add(image.stem)
        self._folders = {key: _Folder(*key, stems) for key, stems in listed.items()}

    def match(self, image: Path) -> LabelMatch:
        """The image's label file: the one its name gives when it exists, else the one
        differing from that only in case."""
        expected = label_path(image)
        folder = self._folders.get((image.parent, expected.parent))
        if folder is None or expected.is_file():
            return LabelMatch(expected)
        names = sorted(folder.unclaimed.get(expected.name.lower(), ()))
        if not names:
            return LabelMatch(expected)
        found = [str(expected.parent / name) for name in names]
        if len(names) > 1:
            return LabelMatch(None, f"label file {expected.name} not found, and {found} all "
                                    "differ from it only in case")
        if folder.images_by_lower[image.stem.lower()] > 1:
            return LabelMatch(None, f"label file {expected.name} not found, and {found[0]} "
                                    "differs only in case from the label names of several "
                                    "images")
        return LabelMatch(Path(found[0]), f"label file {expected.name} not found, but "
                                          f"{found[0]} differs from it only in case")

    def without_image(self) -> list[tuple[Path, Path]]:
        """``(label file, image folder)`` of the label files whose name matches no image, not
        even ignoring case (label folders apart from the image folders only)."""
        return [(folder.label_dir / name, folder.image_dir)
                for folder in self._folders.values() if folder.label_dir != folder.image_dir
                for name in folder.orphans]
