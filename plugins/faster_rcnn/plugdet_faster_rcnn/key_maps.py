"""Parameter names of torchvision's and MMDetection's Faster R-CNN (and torchvision's Mask
R-CNN) against ours.

Each table maps a prefix of the source's names to a prefix of ours and is applied by the
longest matching prefix; a table is read in both directions (a name of ours gives the
source's). torchvision's box predictor has the background first (class row 0 and its box
deltas, rows 0-3), ours and MMDetection's have it last (class row ``C``) and no background
box; torchvision's mask predictor has a background channel (0), ours has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from torch import Tensor

from core.api import indexed_prefixes, rename_keys

Value = TypeVar("Value")

#: Our class predictor (``C`` classes, then the background) and box predictor (``C`` blocks
#: of ``BOX_SIZE`` rows).
CLS_KEYS = ("roi_head.bbox_head.fc_cls.weight", "roi_head.bbox_head.fc_cls.bias")
REG_KEYS = ("roi_head.bbox_head.fc_reg.weight", "roi_head.bbox_head.fc_reg.bias")
BOX_SIZE = 4
#: Our class-specific mask logits (``C`` channels, no background).
MASK_KEYS = ("roi_head.mask_head.conv_logits.weight", "roi_head.mask_head.conv_logits.bias")

FPN_LEVELS = 4  # C2-C5
BOX_HEAD_CONVS = 4  # fasterrcnn_resnet50_fpn_v2
MASK_HEAD_CONVS = 4


_TORCHVISION_COMMON = {
    "backbone.body.": "backbone.",
    "rpn.head.cls_logits.": "rpn_head.rpn_cls.",
    "rpn.head.bbox_pred.": "rpn_head.rpn_reg.",
    "roi_heads.box_predictor.cls_score.": "roi_head.bbox_head.fc_cls.",
    "roi_heads.box_predictor.bbox_pred.": "roi_head.bbox_head.fc_reg.",
}
#: ``fasterrcnn_resnet50_fpn``: FPN convs with bias, one RPN conv, ``TwoMLPHead``.
TORCHVISION_FASTER_RCNN = {
    **_TORCHVISION_COMMON,
    **indexed_prefixes("backbone.fpn.inner_blocks.{}.0.", "neck.lateral_convs.{}.", FPN_LEVELS),
    **indexed_prefixes("backbone.fpn.layer_blocks.{}.0.", "neck.fpn_convs.{}.", FPN_LEVELS),
    "rpn.head.conv.0.0.": "rpn_head.rpn_conv.",
    "roi_heads.box_head.fc6.": "roi_head.bbox_head.shared_fcs.1.",
    "roi_heads.box_head.fc7.": "roi_head.bbox_head.shared_fcs.3.",
}
#: ``fasterrcnn_resnet50_fpn_v2``: FPN convs with BatchNorm (the same ``.0`` conv, ``.1`` norm
#: inside each block on both sides), two RPN convs, ``FastRCNNConvFCHead`` of 4 conv +
#: BatchNorm layers and one FC (``box_head.4`` flattens).
TORCHVISION_FASTER_RCNN_V2 = {
    **_TORCHVISION_COMMON,
    **indexed_prefixes("backbone.fpn.inner_blocks.{}.", "neck.lateral_convs.{}.", FPN_LEVELS),
    **indexed_prefixes("backbone.fpn.layer_blocks.{}.", "neck.fpn_convs.{}.", FPN_LEVELS),
    **indexed_prefixes("rpn.head.conv.{}.0.", "rpn_head.rpn_conv.{}.", 2, step=2),
    **indexed_prefixes("roi_heads.box_head.{}.0.", "roi_head.bbox_head.shared_convs.{}.",
                       BOX_HEAD_CONVS, step=3),
    **indexed_prefixes("roi_heads.box_head.{}.1.", "roi_head.bbox_head.shared_convs.{}.",
                       BOX_HEAD_CONVS, step=3, offset=1),
    f"roi_heads.box_head.{BOX_HEAD_CONVS + 1}.": "roi_head.bbox_head.shared_fcs.1.",
}
#: ``maskrcnn_resnet50_fpn``: the v1 Faster R-CNN and ``MaskRCNNHeads`` (4 conv + ReLU blocks,
#: the conv ``.0`` of each) with ``MaskRCNNPredictor`` (transposed conv, 1x1 logits).
TORCHVISION_MASK_RCNN = {
    **TORCHVISION_FASTER_RCNN,
    **indexed_prefixes("roi_heads.mask_head.{}.0.", "roi_head.mask_head.convs.{}.",
                       MASK_HEAD_CONVS),
    "roi_heads.mask_predictor.conv5_mask.": "roi_head.mask_head.upsample.",
    "roi_heads.mask_predictor.mask_fcn_logits.": "roi_head.mask_head.conv_logits.",
}
#: Files of torchvision < 0.13 (the published v1 weights): the RPN conv unwrapped
#: (``rpn.head.conv.weight``), renamed by torchvision on load; exact keys.
TORCHVISION_LEGACY_KEYS = {f"rpn.head.conv.{param}": f"rpn.head.conv.0.0.{param}"
                           for param in ("weight", "bias")}
#: MMDetection ``FasterRCNN`` (``faster-rcnn_r50_fpn``, ``Shared2FCBBoxHead``).
MMDET_FASTER_RCNN = {
    "backbone.": "backbone.",
    **indexed_prefixes("neck.lateral_convs.{}.conv.", "neck.lateral_convs.{}.", FPN_LEVELS),
    **indexed_prefixes("neck.fpn_convs.{}.conv.", "neck.fpn_convs.{}.", FPN_LEVELS),
    "rpn_head.": "rpn_head.",
    **indexed_prefixes("roi_head.bbox_head.shared_fcs.{}.", "roi_head.bbox_head.shared_fcs.{}.",
                       2, step=2, offset=1),
    "roi_head.bbox_head.fc_cls.": "roi_head.bbox_head.fc_cls.",
    "roi_head.bbox_head.fc_reg.": "roi_head.bbox_head.fc_reg.",
}


def torchvision_table(state: Mapping[str, Value]) -> dict[str, str]:
    """The table of a torchvision Faster R-CNN state: v2 when its box head has convs, Mask
    R-CNN when it has a mask predictor."""
    if "roi_heads.mask_predictor.mask_fcn_logits.weight" in state:
        return TORCHVISION_MASK_RCNN
    v2 = "roi_heads.box_head.0.0.weight" in state
    return TORCHVISION_FASTER_RCNN_V2 if v2 else TORCHVISION_FASTER_RCNN


def torchvision_legacy_renamed(state: Mapping[str, Value]) -> dict[str, Value]:
    """A state of torchvision < 0.13 under today's names (today's states as they are)."""
    return {TORCHVISION_LEGACY_KEYS.get(key, key): value for key, value in state.items()}


def background_last(key: str, value: Tensor) -> Tensor:
    """A torchvision predictor tensor (our name ``key``) in our layout: the background's
    class row moved from first to last, its box rows (the first :data:`BOX_SIZE`) and its
    mask channel (the first) dropped; other tensors as they are."""
    if key in MASK_KEYS:
        return value[1:]
    if key in CLS_KEYS:
        return value[[*range(1, len(value)), 0]]
    if key in REG_KEYS:
        return value[BOX_SIZE:]
    return value


def torchvision_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A torchvision Faster R-CNN state (v1 of any torchvision version, or v2) or Mask R-CNN
    state under our names and in our predictor layout (:func:`background_last`).

    :raises KeyError: for a parameter without counterpart."""
    state = torchvision_legacy_renamed(state)
    ours = rename_keys(state, torchvision_table(state))
    return {key: background_last(key, value) for key, value in ours.items()}
