"""Test-time augmentation: several views of one image, predictions merged back.

Use::

    pipeline = [{type = "LoadImage"},
                {type = "TestTimeAug", scales = [[512, 512], [640, 640]], flip = true,
                 transforms = [{type = "Normalize"}, {type = "Pad", size_divisor = 32}]}]

:class:`TestTimeAug` is the last transform of a test pipeline: for each sample it returns a
list of views (every scale, each unflipped and, with ``flip``, flipped). The data loader's
collate puts all views of a batch into one :class:`~core.structures.DetBatch` and records in
``view.meta["tta_group"]`` which image each view belongs to. The model predicts every view
(``detector.predict`` maps each view's boxes back to the original image with
:meth:`~core.structures.DetSample.instances_to_original`, undoing its flip and resize), and
:func:`merge_tta_predictions` merges the views of each image with class-wise NMS::

    preds = model.predict(batch)
    samples, preds = merge_tta_predictions(batch.samples, preds)
    # one sample per image, sample.pred = merged predictions in original coordinates

:func:`tta_pipeline` turns an ordinary test pipeline (``... Resize ... Normalize, Pad``) into
the TTA pipeline above.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

import numpy as np
import torch
from torchvision.ops import batched_nms

from core.data.transforms.base import clone_sample
from core.data.transforms.geometric import fit_size, flip_sample, resize_sample
from core.errors import ConfigError, DataError
from core.registry import component
from core.structures import DetSample, Instances

TTA_GROUP_KEY = "tta_group"


class TestTimeAug:
    """Expand a loaded sample into resized (and flipped) views.

    :param scales: ``(h, w)`` scales, one view each (aspect kept with ``keep_ratio``); empty:
        one view at the loaded size.
    :param flip: add a mirrored copy of every scale.
    :param flip_direction: direction of the mirrored copies.
    :param keep_ratio: keep the aspect ratio when resizing.
    :param transforms: transforms applied to every view after resize and flip (Normalize,
        Pad, ...).
    """

    __test__ = False  # not a pytest test class despite its name

    def __init__(
        self,
        scales: list[tuple[int, int]] = [(640, 640)],  # noqa: B006 (config default)
        flip: bool = True,
        flip_direction: Literal["horizontal", "vertical", "diagonal"] = "horizontal",
        keep_ratio: bool = True,
        transforms: Annotated[list[Any], component("transform")] = [],  # noqa: B006
    ) -> None:
        self.scales = [tuple(s) for s in scales]
        self.flip = flip
        self.flip_direction = flip_direction
        self.keep_ratio = keep_ratio
        self.transforms = list(transforms)

    def __call__(self, sample: DetSample, rng: np.random.Generator) -> list[DetSample]:
        """``sample`` (image loaded, not resized) -> ``max(len(scales), 1) * (1 + flip)`` views."""
        if sample.image is None:
            raise DataError(f"TestTimeAug: sample img_id={sample.img_id} has no image")
        shape = (int(sample.image.shape[1]), int(sample.image.shape[2]))
        views = []
        sizes = [fit_size(shape, scale, self.keep_ratio) for scale in self.scales] or [shape]
        for size in sizes:
            for flipped in (False, True) if self.flip else (False,):
                view = resize_sample(clone_sample(sample), size)
                if flipped:
                    view = flip_sample(view, self.flip_direction)
                for transform in self.transforms:
                    view = transform(view, rng)
                views.append(view)
        return views


def merge_tta_predictions(
    samples: list[DetSample],
    preds: list[Instances],
    iou_thr: float = 0.5,
    max_per_img: int = 100,
) -> tuple[list[DetSample], list[Instances]]:
    """Merge the predictions of the views of each image.

    :param samples: the views of a TTA batch (``meta["tta_group"]`` says which image; views
        without it are single images).
    :param preds: ``detector.predict`` output, one :class:`Instances` per view, boxes in
        original-image coordinates (a flipped view's flip already undone).
    :param iou_thr: IoU threshold of the class-wise NMS across views.
    :param max_per_img: highest-scoring boxes kept per image.
    :returns: one sample per image (its first view, ``pred`` set to the merged predictions)
        and the merged predictions, in order of first appearance.
    """
    if len(samples) != len(preds):
        raise ValueError(f"{len(samples)} views but {len(preds)} predictions")
    groups: dict[Any, list[int]] = {}
    for index, sample in enumerate(samples):
        groups.setdefault(sample.meta.get(TTA_GROUP_KEY, ("single", index)), []).append(index)
    merged_samples, merged_preds = [], []
    for members in groups.values():
        parts = [preds[i].to("cpu") for i in members]
        parts = [p if p.scores is not None else _with_unit_scores(p) for p in parts]
        joined = Instances.cat(parts)
        keep = batched_nms(joined.boxes, joined.scores, joined.labels, iou_thr)[:max_per_img]
        merged = joined[keep]
        first = clone_sample(samples[members[0]])
        first.pred = merged
        merged_samples.append(first)
        merged_preds.append(merged)
    return merged_samples, merged_preds


def _with_unit_scores(pred: Instances) -> Instances:
    return Instances(boxes=pred.boxes, labels=pred.labels, scores=torch.ones(len(pred)),
                     masks=pred.masks)


def tta_pipeline(
    pipeline: list[dict[str, Any]],
    scales: list[tuple[int, int]] | None = None,
    flip: bool = True,
) -> list[dict[str, Any]]:
    """Turn a test pipeline config into its TTA version.

    The first ``Resize`` table and every transform after it are replaced by one
    ``TestTimeAug`` table whose views use ``scales`` (default: the Resize scale) and whose
    per-view transforms are those that followed the Resize. A pipeline without ``Resize``
    gets the ``TestTimeAug`` right after ``LoadImage`` (views at ``scales``, or at the loaded
    size when no scales are given).

    :param pipeline: list of transform tables, e.g. ``[LoadImage, Resize, Normalize, Pad]``.
    :raises ConfigError: a table of the pipeline has no ``type``.
    """
    types = [table.get("type") if isinstance(table, dict) else None for table in pipeline]
    if None in types:
        raise ConfigError(f"test pipeline[{types.index(None)}]: expected a table with 'type'")
    if "Resize" in types:
        position = types.index("Resize")
        resize = pipeline[position]
        view_scales = scales or [tuple(resize.get("scale", (640, 640)))]
        keep_ratio = resize.get("keep_ratio", True)
        rest = pipeline[position + 1 :]
    else:
        position = types.index("LoadImage") + 1 if "LoadImage" in types else 0
        view_scales, keep_ratio, rest = scales or [], True, pipeline[position:]
    tta = {
        "type": "TestTimeAug",
        "scales": [list(s) for s in view_scales],
        "flip": flip,
        "keep_ratio": keep_ratio,
        "transforms": copy.deepcopy(rest),
    }
    return [*copy.deepcopy(pipeline[:position]), tta]
