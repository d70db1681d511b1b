"""The YOLOX neck: a PAFPN of C3 blocks, layer for layer the YOLOv5 one."""

from __future__ import annotations

from plugdet_yolo.necks import YOLOv5PAFPN


class YOLOXPAFPN(YOLOv5PAFPN):
    """YOLOX's PAFPN: a 1x1 conv reduces the coarsest map to the next level's channels, C3
    fusions without shortcuts top-down (each but the last followed by a 1x1 reduction) and
    bottom-up after stride-2 3x3 convs; outputs ``(256, 512, 1024) * widen`` channels. This
    is exactly :class:`~plugdet_yolo.necks.YOLOv5PAFPN` (same layers and parameters); the
    name keeps YOLOX configs readable. See :class:`~plugdet_yolo.necks.PAFPN` for the
    parameters and shapes."""
