"""The key maps of the peers' YOLO checkpoints (plugdet name -> peer name), one per source
and architecture.

ultralytics and the original YOLOv5 number the modules of their ``model`` list (a YAML row
each): the backbone rows 0-9 are shared by YOLOv8 and YOLOv5, the necks differ (YOLOv8 rows
12-21, YOLOv5 rows 10-23) and the detect row comes last (YOLOv8: 22, YOLOv5: 24). Inside a
row, C2f names its convs ``cv1`` (split) / ``cv2`` (fuse), C3 ``cv1`` (main) / ``cv2``
(shortcut) / ``cv3`` (fuse), both their bottlenecks ``m.i.cv1`` / ``m.i.cv2``, SPPF
``cv1`` / ``cv2``. The YOLOv8 detect row has ``cv2`` (box branches), ``cv3`` (class
branches) and ``dfl`` (the fixed bins, not a plugdet parameter); the anchor-based YOLOv5 one
``m`` (one 1x1 conv per level) and ``anchors`` (checked against the config, not loaded).

MMYOLO's names are plugdet's up to the stage names (``stage1..4``), the SPP(F) convs
(``conv1`` / ``conv2``) and the heads' ``bbox_head.head_module`` modules. Its YOLOX and
RTMDet necks end with ``out_layers``: YOLOX's 1x1 convs are the stems of plugdet's YOLOX
head, RTMDet's 3x3 convs the ``out_convs`` of plugdet's CSPNeXtPAFPN. YOLOX's Focus stem
becomes plugdet's 6x6 stem conv by a reordering of its weight.
"""

from __future__ import annotations

from plugdet_yolo.zoo.keymap import FocusStemWeight, KeyMap

#: Levels of the P5 heads (strides 8, 16, 32) and 3x3 convs per RTMDet head branch.
NUM_LEVELS = 3
RTMDET_STACKED_CONVS = 2

ULTRALYTICS_BACKBONE = {
    "backbone.stem": "model.0",
    "backbone.stages.0.0": "model.1",
    "backbone.stages.0.1": "model.2",
    "backbone.stages.1.0": "model.3",
    "backbone.stages.1.1": "model.4",
    "backbone.stages.2.0": "model.5",
    "backbone.stages.2.1": "model.6",
    "backbone.stages.3.0": "model.7",
    "backbone.stages.3.1": "model.8",
    "backbone.stages.3.2": "model.9",
}
ULTRALYTICS_YOLOV8_NECK = {
    "neck.top_down_layers.0": "model.12",
    "neck.top_down_layers.1": "model.15",
    "neck.downsample_layers.0": "model.16",
    "neck.bottom_up_layers.0": "model.18",
    "neck.downsample_layers.1": "model.19",
    "neck.bottom_up_layers.1": "model.21",
}
ULTRALYTICS_YOLOV5_NECK = {
    "neck.reduce_layers.2": "model.10",
    "neck.top_down_layers.0.0": "model.13",
    "neck.top_down_layers.0.1": "model.14",
    "neck.top_down_layers.1": "model.17",
    "neck.downsample_layers.0": "model.18",
    "neck.bottom_up_layers.0": "model.20",
    "neck.downsample_layers.1": "model.21",
    "neck.bottom_up_layers.1": "model.23",
}
YOLOV8_DETECT_ROW = "model.22"
YOLOV5_DETECT_ROW = "model.24"
C2F_NAMES = {"main_conv": "cv1", "final_conv": "cv2", "blocks": "m", "conv1": "cv1",
             "conv2": "cv2", "reduce": "cv1", "fuse": "cv2"}
C3_NAMES = {"main_conv": "cv1", "short_conv": "cv2", "final_conv": "cv3", "blocks": "m",
            "conv1": "cv1", "conv2": "cv2", "reduce": "cv1", "fuse": "cv2"}


def dfl_head(row: str) -> dict[str, str]:
    """The anchor-free detect row ``row`` of ultralytics (YOLOv8 head)."""
    return {"head.cls_branches": f"{row}.cv3", "head.reg_branches": f"{row}.cv2"}


ULTRALYTICS_YOLOV8 = KeyMap(
    {**ULTRALYTICS_BACKBONE, **ULTRALYTICS_YOLOV8_NECK, **dfl_head(YOLOV8_DETECT_ROW)},
    C2F_NAMES)
#: YOLOv8-seg: the detect row adds ``cv4`` (mask coefficient branches) and ``proto``
#: (``cv1``, ``upsample``, ``cv2``, ``cv3``).
ULTRALYTICS_YOLOV8_SEG = KeyMap(
    {**ULTRALYTICS_BACKBONE, **ULTRALYTICS_YOLOV8_NECK, **dfl_head(YOLOV8_DETECT_ROW),
     "head.mask_branches": f"{YOLOV8_DETECT_ROW}.cv4", "head.proto": f"{YOLOV8_DETECT_ROW}.proto"},
    {**C2F_NAMES, "conv3": "cv3"})
ULTRALYTICS_YOLOV5U = KeyMap(
    {**ULTRALYTICS_BACKBONE, **ULTRALYTICS_YOLOV5_NECK, **dfl_head(YOLOV5_DETECT_ROW)},
    C3_NAMES)
YOLOV5 = KeyMap(
    {**ULTRALYTICS_BACKBONE, **ULTRALYTICS_YOLOV5_NECK, "head.convs": f"{YOLOV5_DETECT_ROW}.m"},
    C3_NAMES)

MM_HEAD = "bbox_head.head_module"
MM_STAGES = {f"backbone.stages.{i}": f"backbone.stage{i + 1}" for i in range(4)}
MM_NAMES = {"reduce": "conv1", "fuse": "conv2"}
MM_BACKBONE_NECK = {"backbone.stem": "backbone.stem", **MM_STAGES, "neck": "neck"}

MMYOLO_YOLOV5 = KeyMap({**MM_BACKBONE_NECK, "head.convs": f"{MM_HEAD}.convs_pred"}, MM_NAMES)
MMYOLO_YOLOV8 = KeyMap({**MM_BACKBONE_NECK, "head.cls_branches": f"{MM_HEAD}.cls_preds",
                        "head.reg_branches": f"{MM_HEAD}.reg_preds"}, MM_NAMES)
MMYOLO_YOLOX = KeyMap(
    {**MM_BACKBONE_NECK, "backbone.stem": "backbone.stem.conv",
     "head.stems": "neck.out_layers",
     "head.cls_convs": f"{MM_HEAD}.multi_level_cls_convs",
     "head.reg_convs": f"{MM_HEAD}.multi_level_reg_convs",
     "head.cls_preds": f"{MM_HEAD}.multi_level_conv_cls",
     "head.reg_preds": f"{MM_HEAD}.multi_level_conv_reg",
     "head.obj_preds": f"{MM_HEAD}.multi_level_conv_obj"},
    MM_NAMES, {"backbone.stem.0.weight": FocusStemWeight()})


def rtmdet_branch(branch: str) -> dict[str, str]:
    """plugdet's RTMDet branch ``branch`` (``cls`` / ``reg``): its convs (one set, or one per
    level without ``share_conv``) and per-level BatchNorms are MMYOLO's ConvModules of
    ``{branch}_convs.{level}.{i}``."""
    table = {}
    for level in range(NUM_LEVELS):
        for i in range(RTMDET_STACKED_CONVS):
            peer = f"{MM_HEAD}.{branch}_convs.{level}.{i}"
            table[f"head.{branch}_convs.{level}.{i}"] = f"{peer}.conv"
            table[f"head.{branch}_norms.{level}.{i}"] = f"{peer}.bn"
    return table


MMYOLO_RTMDET = KeyMap(
    {**MM_BACKBONE_NECK, "neck.out_convs": "neck.out_layers", **rtmdet_branch("cls"),
     **rtmdet_branch("reg"), "head.cls_preds": f"{MM_HEAD}.rtm_cls",
     "head.reg_preds": f"{MM_HEAD}.rtm_reg"},
    MM_NAMES)
