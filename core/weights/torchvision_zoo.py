"""torchvision's COCO detectors: ``torchvision://NAME`` downloads, and what the keys of a saved
torchvision ``state_dict`` tell about its architecture."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import Tensor

from core.errors import CheckpointError

TORCHVISION_PREFIX = "torchvision://"
#: Key prefixes only torchvision's detection models have.
TORCHVISION_KEYS = ("backbone.body.", "head.classification_head.", "roi_heads.box_predictor.",
                    "rpn.head.")
BACKGROUND = "__background__"
#: torchvision's COCO categories by class index: 0 ``__background__``, then category ids
#: 1..90 with ``N/A`` where COCO has no category (the rows of its COCO detectors).
TORCHVISION_COCO_CATEGORIES: tuple[str, ...] = tuple(
    torchvision.models.detection.FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"])
#: torchvision's class rows after the background: 90 names, ``N/A`` rows kept in place.
TORCHVISION_COCO_CLASSES = TORCHVISION_COCO_CATEGORIES[1:]
#: The 80 COCO classes in category-id order (MMDetection's and MMYOLO's rows).
COCO_CLASSES = tuple(name for name in TORCHVISION_COCO_CLASSES if name != "N/A")


def detection_models() -> list[str]:
    """The names of torchvision's detection models (``retinanet_resnet50_fpn``, ...)."""
    names: list[str] = torchvision.models.list_models(module=torchvision.models.detection)
    return sorted(names)


def default_weights(name: str) -> Any:
    """The ``DEFAULT`` (COCO) weights enum member of detection model ``name``.

    :raises CheckpointError: ``name`` is not a torchvision detection model with weights.
    """
    if name not in detection_models():
        raise CheckpointError(f"{TORCHVISION_PREFIX}{name}: not a torchvision detection model; "
                              f"known: {', '.join(detection_models())}")
    return torchvision.models.get_model_weights(name).DEFAULT


def categories(weights: Any) -> tuple[str, ...]:
    """The classes of a weights enum member in row order, without ``__background__`` (the
    ``N/A`` placeholders of COCO's unused ids stay, so row ``i + 1`` is class ``i``)."""
    return tuple(name for name in weights.meta["categories"] if name != BACKGROUND)


def download(uri: str) -> tuple[dict[str, Tensor], Any]:
    """The state dict of ``torchvision://NAME`` (through torch's hub cache,
    ``weights_only=True``) and its weights enum member.

    :raises CheckpointError: unknown name, or the file cannot be downloaded (offline): the
        message gives the URL to fetch elsewhere.
    """
    weights = default_weights(uri[len(TORCHVISION_PREFIX):])
    try:
        state = torch.hub.load_state_dict_from_url(weights.url, map_location="cpu",
                                                   progress=False, weights_only=True)
    except OSError as exc:
        raise CheckpointError(
            f"cannot download {uri} from {weights.url} ({exc}); download the file elsewhere "
            "and give its local path in load_from") from exc
    except Exception as exc:  # a corrupt download in the hub cache
        raise CheckpointError(f"cannot read {uri} ({weights.url}): {exc}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{uri}: {weights.url} does not hold a state dict")
    return state, weights


def looks_like_torchvision(keys: Iterable[str]) -> bool:
    """Whether state dict keys are those of a torchvision detection model."""
    return any(key.startswith(TORCHVISION_KEYS) for key in keys)


def architecture(keys: Iterable[str]) -> str:
    """The torchvision model a state dict's keys belong to (v1 and v2 differ in their head
    norms and box head; a mask predictor makes it Mask R-CNN), or ``""``."""
    names = set(keys)
    if "head.classification_head.cls_logits.weight" in names:
        v2 = "head.classification_head.conv.0.1.weight" in names  # GroupNorm after each conv
        return "retinanet_resnet50_fpn_v2" if v2 else "retinanet_resnet50_fpn"
    if "roi_heads.mask_predictor.mask_fcn_logits.weight" in names:
        return "maskrcnn_resnet50_fpn"
    if "roi_heads.box_predictor.cls_score.weight" in names:
        v2 = "roi_heads.box_head.5.weight" in names  # conv box head, then a linear layer
        return "fasterrcnn_resnet50_fpn_v2" if v2 else "fasterrcnn_resnet50_fpn"
    return ""


def released_classes(path: Path, name: str) -> tuple[str, ...] | None:
    """The COCO classes of a downloaded release file of model ``name`` (recognised by the
    file name torchvision gives it, e.g. ``retinanet_resnet50_fpn_coco-eeacb38b.pth``), or
    None for any other file."""
    if name not in detection_models():
        return None
    weights = torchvision.models.get_model_weights(name).DEFAULT
    return categories(weights) if Path(weights.url).name == path.name else None
