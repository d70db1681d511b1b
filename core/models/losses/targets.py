"""Class targets for per-class binary losses, and which form a classification loss takes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor

from core.errors import ConfigError

#: What a classification loss declares in its ``cls_targets`` class attribute.
ClsTargets = Literal["labels", "soft", "labels_or_soft"]
#: A form of class targets a head gives: ``(N,)`` int64 labels or ``(N, C)`` float
#: ``one_hot * quality``.
TargetForm = Literal["labels", "soft"]
#: The forms a loss takes, per declaration; a loss without ``cls_targets`` takes labels.
FORMS_TAKEN: dict[str, tuple[TargetForm, ...]] = {
    "labels": ("labels",), "soft": ("soft",), "labels_or_soft": ("labels", "soft")}
DEFAULT_CLS_TARGETS: ClsTargets = "labels"
_DESCRIPTIONS = {"labels": "class labels", "soft": "soft (quality) targets"}
_EXAMPLES = {"labels": "class labels, e.g. FocalLoss",
             "soft": "soft targets, e.g. QualityFocalLoss"}


def one_hot_without_background(labels: Tensor, like: Tensor) -> Tensor:
    """``(N,)`` labels in ``[0, C]`` (``C`` = background) -> ``(N, C)`` 0/1 targets.

    :param labels: ``(N,)`` int64 labels.
    :param like: ``(N, C)`` tensor giving the shape, dtype and device of the result.
    """
    target = like.new_zeros(like.shape)
    foreground = labels < like.shape[1]
    target[foreground, labels[foreground]] = 1.0
    return target


def _describe(forms: Sequence[str]) -> str:
    return " or ".join(_DESCRIPTIONS[form] for form in forms)


def cls_target_form(loss: object, head: str, gives: Sequence[TargetForm]) -> TargetForm:
    """The form of class targets a head gives ``loss``: the first of ``gives`` (the head's
    forms, preferred first) that the loss's ``cls_targets`` takes.

    :param loss: the built classification loss.
    :param head: the head's name, for the message.
    :raises ConfigError: ``loss_cls: ...`` naming the loss and the head when they have no form
        in common, or when the loss declares an unknown ``cls_targets``.
    """
    name = type(loss).__name__
    declared = getattr(loss, "cls_targets", DEFAULT_CLS_TARGETS)
    if declared not in FORMS_TAKEN:
        expected = ", ".join(repr(value) for value in FORMS_TAKEN)
        raise ConfigError(f"loss_cls: {name} declares cls_targets = {declared!r}; expected one "
                          f"of {expected}")
    takes = FORMS_TAKEN[declared]
    for form in gives:
        if form in takes:
            return form
    raise ConfigError(f"loss_cls: {name} takes {_describe(takes)}, but {head} gives "
                      f"{_describe(gives)}; use a loss that takes {_EXAMPLES[gives[0]]}")
