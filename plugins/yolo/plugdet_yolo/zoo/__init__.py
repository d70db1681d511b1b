"""Checkpoints of the peers' model zoos as starting points: the key maps (:mod:`.tables`)
and weight converters (:mod:`.converters`) of ultralytics' YOLOv8 / YOLOv5u files, the
anchor-based YOLOv5 release files and MMYOLO's YOLOv5, YOLOv8, YOLOX and RTMDet files."""
