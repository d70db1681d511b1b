"""Copying an image without its EXIF orientation, so that every reader shows the stored pixels.

Used where annotations refer to the stored pixels of a photo whose EXIF tag says to turn it
(see :mod:`core.data.datasets.image_size`): a reader that honours the tag would otherwise
show the objects elsewhere. A JPEG file keeps its compressed data byte for byte (only the
tag's value becomes 1, "as stored"); other formats are written again without the tag,
losslessly.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

from PIL import Image

from core.data.datasets.image_size import ORIENTATION_TAG

JPEG_START = b"\xff\xd8"
EXIF_HEADER = b"Exif\x00\x00"
#: markers without a length field; the start of scan (image data follows) and end of image.
STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
SCAN_OR_END = frozenset({0xD9, 0xDA})
APP1 = 0xE1
#: TIFF type of a 16-bit unsigned value; bytes of an IFD entry.
SHORT = 3
ENTRY = 12
ByteOrder = Literal["little", "big"]
BYTE_ORDERS: dict[bytes, ByteOrder] = {b"II": "little", b"MM": "big"}


def _orientation_in_tiff(tiff: bytes) -> tuple[int, ByteOrder] | None:
    """``(offset, byte order)`` of the orientation value in IFD0 of a TIFF (EXIF) block."""
    order = BYTE_ORDERS.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return None
    ifd = int.from_bytes(tiff[4:8], order)
    if ifd + 2 > len(tiff):
        return None
    for index in range(int.from_bytes(tiff[ifd:ifd + 2], order)):
        entry = ifd + 2 + ENTRY * index
        if entry + ENTRY > len(tiff):
            return None
        tag = int.from_bytes(tiff[entry:entry + 2], order)
        kind = int.from_bytes(tiff[entry + 2:entry + 4], order)
        if tag == ORIENTATION_TAG and kind == SHORT:
            return entry + 8, order
    return None


def jpeg_without_orientation(data: bytes) -> bytes | None:
    """``data`` (a JPEG file) with the orientation of its EXIF block set to 1; ``None`` when
    it is not a JPEG file or has no such value."""
    if not data.startswith(JPEG_START):
        return None
    pos = len(JPEG_START)
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF or marker in STANDALONE:
            pos += 1 if marker == 0xFF else 2
            continue
        if marker in SCAN_OR_END:
            return None
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        body = pos + 4
        if marker == APP1 and data[body:body + len(EXIF_HEADER)] == EXIF_HEADER:
            tiff = body + len(EXIF_HEADER)
            found = _orientation_in_tiff(data[tiff:pos + 2 + length])
            if found is None:
                return None
            offset, order = found
            value = (1).to_bytes(2, order)
            return data[:tiff + offset] + value + data[tiff + offset + 2:]
        pos += 2 + length
    return None


def _orientation(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as image:
        return image.getexif().get(ORIENTATION_TAG, 1)


def copy_without_orientation(source: Path, target: Path) -> None:
    """Write ``source`` to ``target`` so that its stored pixels are shown as they are."""
    data = source.read_bytes()
    patched = jpeg_without_orientation(data)
    if patched is not None and _orientation(patched) == 1:
        target.write_bytes(patched)
        return
    with Image.open(source) as image:
        exif = image.getexif()
        exif.pop(ORIENTATION_TAG, None)
        options: dict[str, object] = {"exif": exif}
        if image.info.get("icc_profile"):
            options["icc_profile"] = image.info["icc_profile"]
        if image.format == "JPEG":
            options["quality"] = "keep"
        elif image.format == "WEBP":
            options["lossless"] = True
        image.save(target, format=image.format, **options)
