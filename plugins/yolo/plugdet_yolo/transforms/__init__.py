"""The YOLO recipes' own transforms: letterbox resizing and the YOLOv5 HSV jitter."""

from plugdet_yolo.transforms.hsv import YOLOv5HSVRandomAug
from plugdet_yolo.transforms.letterbox import LetterResize

__all__ = ["LetterResize", "YOLOv5HSVRandomAug"]
