"""Parameter names of torchvision's and MMDetection's RetinaNet and ATSS against ours.

Each table maps a prefix of the source's names to a prefix of ours and is applied by the
longest matching prefix; a table is read in both directions (a name of ours gives the
source's). The class rows of torchvision's RetinaNet (``A`` blocks of ``1 + C`` rows, row 0
of a block the background, never a target) become ours (``A`` blocks of ``C``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from torch import Tensor

from core.api import indexed_prefixes, rename_keys

Value = TypeVar("Value")

#: Parameters holding class rows, by our name.
CLS_KEYS = ("head.retina_cls.weight", "head.retina_cls.bias")

FPN_INPUTS = 3  # C3-C5
EXTRA_LEVELS = 2  # P6, P7
SUBNET_CONVS = 4
TORCHVISION_BRANCHES = ("classification", "regression")
MMDET_BRANCHES = ("cls", "reg")


def _subnets(source: str, branches: tuple[str, str], layers: Mapping[str, int], step: int
             ) -> dict[str, str]:
    """Both subnets' convs: ``source`` has ``{branch}`` (the class then the box subnet's name
    in ``branches``) and ``{}`` (the conv index); each ``layers`` suffix of conv ``i`` maps
    to our layer ``step * i + offset``."""
    table: dict[str, str] = {}
    for theirs, ours in zip(branches, ("cls", "reg"), strict=True):
        for suffix, offset in layers.items():
            table |= indexed_prefixes(source.replace("{branch}", theirs) + suffix,
                                      f"head.{ours}_convs.{{}}.", SUBNET_CONVS, step, offset)
    return table


_TORCHVISION_COMMON = {
    "backbone.body.": "backbone.",
    **indexed_prefixes("backbone.fpn.inner_blocks.{}.0.", "neck.lateral_convs.{}.", FPN_INPUTS),
    **indexed_prefixes("backbone.fpn.layer_blocks.{}.0.", "neck.fpn_convs.{}.", FPN_INPUTS),
    "backbone.fpn.extra_blocks.p6.": "neck.extra_convs.0.",
    "backbone.fpn.extra_blocks.p7.": "neck.extra_convs.1.",
    "head.classification_head.cls_logits.": "head.retina_cls.",
    "head.regression_head.bbox_reg.": "head.retina_reg.",
}
#: ``retinanet_resnet50_fpn``: subnet convs with bias (ours: conv, ReLU).
TORCHVISION_RETINANET = {
    **_TORCHVISION_COMMON,
    **_subnets("head.{branch}_head.conv.{}.", TORCHVISION_BRANCHES, {"0.": 0}, step=2),
}
#: ``retinanet_resnet50_fpn_v2``: subnet convs without bias, GroupNorm (ours: conv, GN, ReLU).
TORCHVISION_RETINANET_V2 = {
    **_TORCHVISION_COMMON,
    **_subnets("head.{branch}_head.conv.{}.", TORCHVISION_BRANCHES, {"0.": 0, "1.": 1},
               step=3),
}
#: Files of torchvision < 0.13 (the published v1 weights): one Sequential of conv, ReLU per
#: subnet (``conv.{2i}.weight``), renamed by torchvision on load; exact keys.
TORCHVISION_LEGACY_KEYS = {
    f"head.{branch}_head.conv.{2 * i}.{param}": f"head.{branch}_head.conv.{i}.0.{param}"
    for branch in TORCHVISION_BRANCHES
    for i in range(SUBNET_CONVS)
    for param in ("weight", "bias")
}

_MMDET_NECK = {
    **indexed_prefixes("neck.lateral_convs.{}.conv.", "neck.lateral_convs.{}.", FPN_INPUTS),
    **indexed_prefixes("neck.fpn_convs.{}.conv.", "neck.fpn_convs.{}.", FPN_INPUTS),
    # the extra levels P6 (on C5 for RetinaNet, on P5 for ATSS) and P7
    **{f"neck.fpn_convs.{FPN_INPUTS + i}.conv.": f"neck.extra_convs.{i}."
       for i in range(EXTRA_LEVELS)},
}
#: MMDetection ``RetinaNet`` (``retinanet_r50_fpn``).
MMDET_RETINANET = {
    "backbone.": "backbone.",
    **_MMDET_NECK,
    **_subnets("bbox_head.{branch}_convs.{}.", MMDET_BRANCHES, {"conv.": 0}, step=2),
    "bbox_head.retina_cls.": "head.retina_cls.",
    "bbox_head.retina_reg.": "head.retina_reg.",
}
#: MMDetection ``ATSS`` (``atss_r50_fpn``): GroupNorm subnets, centerness, per-level scales.
MMDET_ATSS = {
    "backbone.": "backbone.",
    **_MMDET_NECK,
    **_subnets("bbox_head.{branch}_convs.{}.", MMDET_BRANCHES, {"conv.": 0, "gn.": 1},
               step=3),
    "bbox_head.atss_cls.": "head.retina_cls.",
    "bbox_head.atss_reg.": "head.retina_reg.",
    "bbox_head.atss_centerness.": "head.atss_centerness.",
    "bbox_head.scales.": "head.scales.",
}


def without_background_rows(value: Tensor, groups: int) -> Tensor:
    """torchvision's ``(groups * (1 + C), ...)`` class rows -> ``(groups * C, ...)``: the
    first row of every block (the background) dropped."""
    blocks = value.reshape(groups, -1, *value.shape[1:])
    return blocks[:, 1:].reshape(-1, *value.shape[1:])


def torchvision_table(state: Mapping[str, Value]) -> dict[str, str]:
    """The table of a torchvision RetinaNet state: v2 when its subnets have GroupNorm."""
    v2 = "head.classification_head.conv.0.1.weight" in state
    return TORCHVISION_RETINANET_V2 if v2 else TORCHVISION_RETINANET


def torchvision_legacy_renamed(state: Mapping[str, Value]) -> dict[str, Value]:
    """A state of torchvision < 0.13 under today's names (today's states as they are)."""
    return {TORCHVISION_LEGACY_KEYS.get(key, key): value for key, value in state.items()}


def torchvision_names(state: Mapping[str, Value]) -> dict[str, Value]:
    """A torchvision RetinaNet state (v1 of any torchvision version, or v2) under our names;
    class rows as they are.

    :raises KeyError: for a parameter without counterpart."""
    state = torchvision_legacy_renamed(state)
    return rename_keys(state, torchvision_table(state))
