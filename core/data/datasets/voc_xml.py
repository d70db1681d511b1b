"""Parsing one Pascal VOC XML annotation file."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import attrs

from core.errors import DataError

BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")


@attrs.define
class VocObject:
    """One ``<object>``: class name, ``[xmin, ymin, xmax, ymax]`` (``None`` if not numeric)
    and the ``difficult`` flag."""

    name: str | None
    box: list[float] | None
    difficult: bool


@attrs.define
class VocAnnotation:
    """An XML file's content; ``width``/``height`` are 0 when ``<size>`` is missing."""

    filename: str | None
    width: int
    height: int
    objects: list[VocObject]


def _text(node: ET.Element | None, tag: str) -> str | None:
    child = None if node is None else node.find(tag)
    return None if child is None or child.text is None else child.text.strip()


def _number(node: ET.Element | None, tag: str) -> float | None:
    try:
        return float(_text(node, tag))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def parse_voc_xml(path: Path) -> VocAnnotation:
    """Read ``path``; :class:`DataError` if it is not well-formed XML."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DataError(f"{path}: not valid XML ({exc})") from exc
    size = root.find("size")
    width, height = _number(size, "width") or 0, _number(size, "height") or 0
    objects = []
    for obj in root.findall("object"):
        coords = [_number(obj.find("bndbox"), tag) for tag in BOX_TAGS]
        objects.append(
            VocObject(
                name=_text(obj, "name"),
                box=None if None in coords else coords,  # type: ignore[arg-type]
                difficult=_text(obj, "difficult") in ("1", "true"),
            )
        )
    return VocAnnotation(_text(root, "filename"), int(width), int(height), objects)
