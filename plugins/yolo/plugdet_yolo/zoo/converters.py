"""The weight converters of the YOLO plugin, one row per source, architecture and size:
ultralytics' YOLOv8 and YOLOv5u files, the anchor-based YOLOv5 release files of
ultralytics/yolov5 (both AGPL-3.0 weights) and MMYOLO's YOLOv5, YOLOv8, YOLOX and RTMDet
files (Apache-2.0 weights; source ``mmdet``: MMYOLO writes MMDetection's format)."""

from __future__ import annotations

from plugdet_yolo.zoo import tables
from plugdet_yolo.zoo.checks import DFLBins, SharedConvCopies, YOLOv5Anchors
from plugdet_yolo.zoo.converter import Architecture, ClassLayout, ZooConverter

CONFIGS = "plugins/yolo/configs"
PRETRAINED = f"{CONFIGS}/pretrained"
#: Buffers of older MMYOLO files that its publish script strips (priors, assigner tables).
MMYOLO_DROPPED = ("priors_base_sizes", "grid_offset", "prior_inds", "data_preprocessor.")

DFL_CLASSES = ClassLayout("head.cls_branches.{}.2", "head.cls_branches")
YOLOV5_CLASSES = ClassLayout("head.convs.{}", "head.convs", groups=3, leading_rows=5)
POINT_CLASSES = ClassLayout("head.cls_preds.{}", "head.cls_preds")

AGPL = "AGPL-3.0"
APACHE = "Apache-2.0"
NUMBERED_STEM = "model.0.conv.weight"
V8_BINS = DFLBins(tables.YOLOV8_DETECT_ROW)
V5U_BINS = DFLBins(tables.YOLOV5_DETECT_ROW)
V5_ANCHORS = YOLOv5Anchors(f"{tables.YOLOV5_DETECT_ROW}.anchors")
MM_HEAD = tables.MM_HEAD

# source, licence, key map, backbone type, head type, marker (a key only this architecture
# has), stem key, class rows; checked keys; dropped keys
ULTRALYTICS_YOLOV8 = Architecture(
    "ultralytics", AGPL, tables.ULTRALYTICS_YOLOV8, "YOLOv8CSPDarknet", "YOLOv8Head",
    V8_BINS.key, NUMBERED_STEM, DFL_CLASSES, checks=(V8_BINS,))
ULTRALYTICS_YOLOV5U = Architecture(
    "ultralytics", AGPL, tables.ULTRALYTICS_YOLOV5U, "YOLOv5CSPDarknet", "YOLOv8Head",
    V5U_BINS.key, NUMBERED_STEM, DFL_CLASSES, checks=(V5U_BINS,))
YOLOV5_RELEASE = Architecture(
    "yolov5", AGPL, tables.YOLOV5, "YOLOv5CSPDarknet", "YOLOv5Head",
    V5_ANCHORS.key, NUMBERED_STEM, YOLOV5_CLASSES, checks=(V5_ANCHORS,))
MMYOLO_YOLOV5 = Architecture(
    "mmdet", APACHE, tables.MMYOLO_YOLOV5, "YOLOv5CSPDarknet", "YOLOv5Head",
    f"{MM_HEAD}.convs_pred.0.weight", "backbone.stem.conv.weight", YOLOV5_CLASSES,
    dropped=MMYOLO_DROPPED)
MMYOLO_YOLOV8 = Architecture(
    "mmdet", APACHE, tables.MMYOLO_YOLOV8, "YOLOv8CSPDarknet", "YOLOv8Head",
    f"{MM_HEAD}.reg_preds.0.2.weight", "backbone.stem.conv.weight", DFL_CLASSES,
    dropped=MMYOLO_DROPPED)
MMYOLO_YOLOX = Architecture(
    "mmdet", APACHE, tables.MMYOLO_YOLOX, "YOLOXCSPDarknet", "YOLOXHead",
    f"{MM_HEAD}.multi_level_conv_obj.0.weight", "backbone.stem.conv.conv.weight",
    POINT_CLASSES, dropped=MMYOLO_DROPPED)
MMYOLO_RTMDET = Architecture(
    "mmdet", APACHE, tables.MMYOLO_RTMDET, "CSPNeXt", "RTMDetHead",
    f"{MM_HEAD}.rtm_reg.0.weight", "backbone.stem.0.conv.weight", POINT_CLASSES,
    checks=(SharedConvCopies(),), dropped=MMYOLO_DROPPED)

# registered name, config, stem channels (the size), architecture
CONVERTERS: tuple[ZooConverter, ...] = tuple(ZooConverter(*row) for row in (
    ("ultralytics/yolov8n", f"{PRETRAINED}/yolov8_n_ultralytics_coco.toml", 16, ULTRALYTICS_YOLOV8),
    ("ultralytics/yolov8s", f"{PRETRAINED}/yolov8_s_ultralytics_coco.toml", 32, ULTRALYTICS_YOLOV8),
    ("ultralytics/yolov5nu", f"{PRETRAINED}/yolov5u_n_ultralytics_coco.toml", 16,
     ULTRALYTICS_YOLOV5U),
    ("ultralytics/yolov5su", f"{PRETRAINED}/yolov5u_s_ultralytics_coco.toml", 32,
     ULTRALYTICS_YOLOV5U),
    ("yolov5/yolov5n", f"{PRETRAINED}/yolov5_n_yolov5_coco.toml", 16, YOLOV5_RELEASE),
    ("yolov5/yolov5s", f"{PRETRAINED}/yolov5_s_yolov5_coco.toml", 32, YOLOV5_RELEASE),
    ("mmyolo/yolov5_n", f"{CONFIGS}/yolov5_n_300e_coco.toml", 16, MMYOLO_YOLOV5),
    ("mmyolo/yolov5_s", f"{CONFIGS}/yolov5_s_300e_coco.toml", 32, MMYOLO_YOLOV5),
    ("mmyolo/yolov8_n", f"{CONFIGS}/yolov8_n_500e_coco.toml", 16, MMYOLO_YOLOV8),
    ("mmyolo/yolov8_s", f"{CONFIGS}/yolov8_s_500e_coco.toml", 32, MMYOLO_YOLOV8),
    ("mmyolo/yolox_tiny", f"{CONFIGS}/yolox_tiny_300e_coco.toml", 24, MMYOLO_YOLOX),
    ("mmyolo/yolox_s", f"{CONFIGS}/yolox_s_300e_coco.toml", 32, MMYOLO_YOLOX),
    ("mmyolo/rtmdet_tiny", f"{CONFIGS}/rtmdet_tiny_300e_coco.toml", 12, MMYOLO_RTMDET),
    ("mmyolo/rtmdet_s", f"{CONFIGS}/rtmdet_s_300e_coco.toml", 16, MMYOLO_RTMDET),
))
