"""Data structures shared by every stage: instances, samples and padded batches.

Boxes are always ``xyxy`` float tensors in absolute pixels of the image they refer to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import attrs
import torch
from torch import Tensor

from core.masks import PolygonMasks

#: Instance masks: polygons for ground truth (compact, exact under transforms), ``(N, H, W)``
#: bool bitmaps for predictions (in the frame of their boxes).
Masks = PolygonMasks | Tensor


def _empty_boxes() -> Tensor:
    return torch.zeros((0, 4), dtype=torch.float32)


def _empty_labels() -> Tensor:
    return torch.zeros((0,), dtype=torch.int64)


@attrs.define
class Instances:
    """A set of N boxes with labels and, for predictions, scores and, where the task has
    them, masks.

    :ivar boxes: ``(N, 4)`` float32, xyxy absolute pixels.
    :ivar labels: ``(N,)`` int64 contiguous class indices.
    :ivar scores: ``(N,)`` float32 confidence, or ``None`` for ground truth.
    :ivar masks: ``None`` (detection only), :class:`~core.masks.PolygonMasks` of N instances
        (ground truth, same frame as ``boxes``), or an ``(N, H, W)`` bool tensor (predictions,
        in the frame of their boxes).
    """

    boxes: Tensor = attrs.field(factory=_empty_boxes)
    labels: Tensor = attrs.field(factory=_empty_labels)
    scores: Tensor | None = None
    masks: Masks | None = None

    def __attrs_post_init__(self) -> None:
        if self.boxes.ndim != 2 or self.boxes.shape[-1] != 4:
            raise ValueError(f"boxes must have shape (N, 4), got {tuple(self.boxes.shape)}")
        if self.labels.shape != (len(self.boxes),):
            raise ValueError(
                f"labels must have shape ({len(self.boxes)},), got {tuple(self.labels.shape)}"
            )
        if self.scores is not None and self.scores.shape != (len(self.boxes),):
            raise ValueError(
                f"scores must have shape ({len(self.boxes)},), got {tuple(self.scores.shape)}"
            )
        if self.masks is not None and len(self.masks) != len(self.boxes):
            raise ValueError(f"masks must hold {len(self.boxes)} instances, got {len(self.masks)}")

    @classmethod
    def empty(cls, with_scores: bool = False) -> Instances:
        """Zero instances (with an empty ``scores`` tensor when ``with_scores``)."""
        return cls(scores=torch.zeros((0,)) if with_scores else None)

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: Tensor | slice | int) -> Instances:
        """Select instances by boolean mask, index tensor, slice or int."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return Instances(
            boxes=self.boxes[index],
            labels=self.labels[index],
            scores=None if self.scores is None else self.scores[index],
            masks=None if self.masks is None else self.masks[index],
        )

    def to(self, device: torch.device | str) -> Instances:
        """Move every tensor to ``device``."""
        return Instances(
            boxes=self.boxes.to(device),
            labels=self.labels.to(device),
            scores=None if self.scores is None else self.scores.to(device),
            masks=self.masks.to(device) if isinstance(self.masks, Tensor) else self.masks,
        )

    @classmethod
    def cat(cls, parts: Sequence[Instances]) -> Instances:
        """Concatenate instance sets (all with scores, or all without; all with masks of one
        kind, or all without: polygon masks take the frame of the first part)."""
        if not parts:
            return cls.empty()
        with_scores = parts[0].scores is not None
        return cls(
            boxes=torch.cat([p.boxes for p in parts]),
            labels=torch.cat([p.labels for p in parts]),
            scores=torch.cat([p.scores for p in parts]) if with_scores else None,  # type: ignore[misc]
            masks=_cat_masks([p.masks for p in parts]),
        )


def _cat_masks(parts: Sequence[Masks | None]) -> Masks | None:
    """Masks of concatenated instance sets; ``None`` when no part has masks."""
    if all(part is None for part in parts):
        return None
    if any(part is None for part in parts):
        raise ValueError("cannot concatenate instances with and without masks")
    if all(isinstance(part, PolygonMasks) for part in parts):
        return PolygonMasks.cat(parts)  # type: ignore[arg-type]
    if all(isinstance(part, Tensor) for part in parts):
        return torch.cat(parts)  # type: ignore[arg-type]
    raise ValueError("cannot concatenate polygon masks with bitmap masks")


#: ``DetSample.meta`` key of the letterbox shift (see :attr:`DetSample.pad_offset`).
PAD_OFFSET_KEY = "pad_offset"

FlipDirection = Literal["horizontal", "vertical", "diagonal"]
_FLIP_DIRECTIONS = ("horizontal", "vertical", "diagonal")


def flip_boxes(boxes: Tensor, shape: tuple[int, int], direction: FlipDirection) -> Tensor:
    """Mirror boxes inside an image of ``shape = (h, w)``: ``horizontal`` maps ``x`` to
    ``w - x``, ``vertical`` ``y`` to ``h - y``, ``diagonal`` both. ``(N, 4) -> (N, 4)``."""
    if direction not in _FLIP_DIRECTIONS:
        raise ValueError(f"unknown flip direction {direction!r}")
    h, w = shape
    flipped = boxes.clone()
    if direction in ("horizontal", "diagonal"):
        flipped[:, 0] = w - boxes[:, 2]
        flipped[:, 2] = w - boxes[:, 0]
    if direction in ("vertical", "diagonal"):
        flipped[:, 1] = h - boxes[:, 3]
        flipped[:, 3] = h - boxes[:, 1]
    return flipped


def clip_boxes(boxes: Tensor, shape: tuple[int, int]) -> Tensor:
    """Clip boxes to an image of ``shape = (h, w)``. ``(N, 4) -> (N, 4)``."""
    h, w = shape
    limits = boxes.new_tensor([w, h, w, h])
    return torch.minimum(boxes.clamp(min=0), limits)


@attrs.define
class DetSample:
    """One image with its meta data, ground truth and (after inference) predictions.

    :ivar img_id: dataset-wide image id (COCO image id where there is one).
    :ivar img_path: path of the image file ("" for generated images).
    :ivar ori_shape: ``(h, w)`` of the image as stored.
    :ivar img_shape: ``(h, w)`` after resizing/cropping, before padding.
    :ivar pad_shape: ``(h, w)`` after padding.
    :ivar scale_factor: ``(sx, sy)`` with ``img = ori * scale``.
    :ivar flip: whether the image was flipped.
    :ivar flip_direction: ``"horizontal"``, ``"vertical"``, ``"diagonal"`` (both), or ``None``
        when not flipped.
    :ivar image: ``(C, H, W)`` tensor: uint8 until normalized, then float32.
    :ivar gt: ground-truth boxes in ``img_shape`` coordinates.
    :ivar ignore: ignore regions (iscrowd, difficult) in ``img_shape`` coordinates.
    :ivar pred: predictions in ``ori_shape`` coordinates, or ``None``.
    :ivar meta: anything else a stage wants to carry along; ``meta["pad_offset"]``
        (:data:`PAD_OFFSET_KEY`) is the ``(dx, dy)`` shift of a letterbox resize.

    Network-input boxes (``img_shape`` pixels: ``gt``, ``ignore``, a head's detections) go
    back to the original image with :meth:`boxes_to_original` / :meth:`instances_to_original`,
    the one mapping the detectors, the metrics, the visualizer and the tools use.
    """

    img_id: int = 0
    img_path: str = ""
    ori_shape: tuple[int, int] = (0, 0)
    img_shape: tuple[int, int] = (0, 0)
    pad_shape: tuple[int, int] = (0, 0)
    scale_factor: tuple[float, float] = (1.0, 1.0)
    flip: bool = False
    flip_direction: str | None = None
    image: Tensor | None = None
    gt: Instances = attrs.field(factory=Instances)
    ignore: Instances = attrs.field(factory=Instances)
    pred: Instances | None = None
    meta: dict[str, Any] = attrs.field(factory=dict)

    @property
    def pad_offset(self) -> tuple[float, float]:
        """``(dx, dy)`` pixels the image was shifted by inside ``img_shape`` (a letterbox's
        centring padding): ``img = ori * scale_factor + pad_offset``, then mirrored inside
        ``img_shape`` if ``flip``; ``(0, 0)`` if none."""
        dx, dy = self.meta.get(PAD_OFFSET_KEY, (0.0, 0.0))
        return float(dx), float(dy)

    def boxes_to_original(self, boxes: Tensor, *, clip: bool = False) -> Tensor:
        """Network-input boxes mapped to original-image pixels, undoing the test transforms
        in this order:

        1. the flip, inside ``img_shape = (h, w)``: ``horizontal`` ``x -> w - x``,
           ``vertical`` ``y -> h - y``, ``diagonal`` both;
        2. the letterbox shift: subtract :attr:`pad_offset` ``(dx, dy)``;
        3. the resize: divide by :attr:`scale_factor` ``(sx, sy)``;
        4. with ``clip``, clamp to ``ori_shape``: ``x`` to ``[0, w]``, ``y`` to ``[0, h]``.

        Detections are clipped (a regressed box may reach past the image); ground truth and
        ignore regions are not (the transforms keep them inside the image already).

        :param boxes: ``(N, 4)`` xyxy in ``img_shape`` pixels, any float dtype and device
            (both kept); not modified.
        :param clip: clamp the result to the original image.
        :returns: a new ``(N, 4)`` xyxy tensor in ``ori_shape`` pixels.
        :raises ValueError: ``flip`` is set but ``flip_direction`` is not one of the three.
        """
        if self.flip:
            if self.flip_direction not in _FLIP_DIRECTIONS:
                raise ValueError(f"sample img_id={self.img_id} ({self.img_path}): flip is set "
                                 f"but flip_direction is {self.flip_direction!r}")
            boxes = flip_boxes(boxes, self.img_shape, self.flip_direction)  # type: ignore[arg-type]
        dx, dy = self.pad_offset
        scale_x, scale_y = self.scale_factor
        boxes = (boxes - boxes.new_tensor([dx, dy, dx, dy])) / boxes.new_tensor(
            [scale_x, scale_y, scale_x, scale_y])
        return clip_boxes(boxes, self.ori_shape) if clip else boxes

    def polygons_to_original(self, masks: PolygonMasks) -> PolygonMasks:
        """Polygon masks in ``img_shape`` pixels mapped to ``ori_shape`` pixels by the steps
        of :meth:`boxes_to_original` (flip, letterbox shift, resize; no clipping)."""
        if self.flip:
            if self.flip_direction not in _FLIP_DIRECTIONS:
                raise ValueError(f"sample img_id={self.img_id} ({self.img_path}): flip is set "
                                 f"but flip_direction is {self.flip_direction!r}")
            masks = attrs.evolve(masks, shape=self.img_shape).flip(self.flip_direction)
        dx, dy = self.pad_offset
        scale_x, scale_y = self.scale_factor
        return masks.translate(-dx, -dy, masks.shape).rescale(1 / scale_x, 1 / scale_y,
                                                             self.ori_shape)

    def instances_to_original(self, instances: Instances, *, clip: bool = False) -> Instances:
        """``instances`` with boxes mapped by :meth:`boxes_to_original` (same ``clip``) and
        polygon masks by :meth:`polygons_to_original`; labels, scores and bitmap masks are
        the same tensors (a bitmap cannot be mapped exactly: heads produce prediction
        bitmaps in the original frame)."""
        masks = instances.masks
        if isinstance(masks, PolygonMasks):
            masks = self.polygons_to_original(masks)
        return Instances(self.boxes_to_original(instances.boxes, clip=clip), instances.labels,
                         instances.scores, masks)

    def to(self, device: torch.device | str) -> DetSample:
        """A copy whose tensors live on ``device``."""
        return attrs.evolve(
            self,
            image=None if self.image is None else self.image.to(device),
            gt=self.gt.to(device),
            ignore=self.ignore.to(device),
            pred=None if self.pred is None else self.pred.to(device),
        )


@attrs.define
class DetBatch:
    """A padded image tensor and its samples.

    :ivar images: ``(B, C, H, W)`` float32, each image at the top-left, padding after.
    :ivar samples: the B samples, ``samples[i].pad_shape == (H, W)``.
    """

    images: Tensor
    samples: list[DetSample]

    def __len__(self) -> int:
        return len(self.samples)

    def to(self, device: torch.device | str) -> DetBatch:
        """Move images and every sample's tensors to ``device``."""
        return DetBatch(self.images.to(device), [s.to(device) for s in self.samples])


def collate(
    samples: Sequence[DetSample], pad_value: float = 0.0, size_divisor: int = 1
) -> DetBatch:
    """Pad the samples' images to one size and stack them.

    :param samples: samples whose ``image`` is ``(C, H_i, W_i)``.
    :param pad_value: value written into the padding.
    :param size_divisor: the padded ``H`` and ``W`` are rounded up to a multiple of this.
    :returns: a batch with ``images`` of shape ``(B, C, H, W)``, H/W the largest sizes rounded
        up; each sample's ``pad_shape`` set to ``(H, W)``; the images keep their dtype
        converted to float32.
    """
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    for index, sample in enumerate(samples):
        if sample.image is None:
            raise ValueError(f"sample {index} (img_id={sample.img_id}) has no image to collate")
    channels = samples[0].image.shape[0]  # type: ignore[union-attr]
    height = max(s.image.shape[1] for s in samples)  # type: ignore[union-attr]
    width = max(s.image.shape[2] for s in samples)  # type: ignore[union-attr]
    height = math.ceil(height / size_divisor) * size_divisor
    width = math.ceil(width / size_divisor) * size_divisor
    images = torch.empty((len(samples), channels, height, width), dtype=torch.float32)
    out = []
    for index, sample in enumerate(samples):
        image = sample.image
        assert image is not None
        image_height, image_width = image.shape[1], image.shape[2]
        images[index, :, :image_height, :image_width] = image
        images[index, :, :image_height, image_width:] = pad_value  # right of the image
        images[index, :, image_height:] = pad_value  # below it
        out.append(attrs.evolve(sample, pad_shape=(height, width)))
    return DetBatch(images, out)
