"""The stage contracts: what every component of every stage must look like.

A plugin author imports these from ``core.contracts``. Each ``register_<stage>s`` hook of
:mod:`core.hookspecs` names the contract of what it registers; registering a component that
lacks a member of its stage's contract fails at start-up with the component's name, its
distribution and the missing member (:func:`missing_members`).

Shapes: ``B`` images, ``N`` priors, ``M`` ground-truth boxes per image (padded), ``C``
classes, ``L`` pyramid levels. Boxes are xyxy pixels of the network input.

The plugin API version (:data:`PLUGIN_API_VERSION`) changes whenever a contract here changes;
``CHANGELOG.md`` says what a plugin author must do.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

if TYPE_CHECKING:
    import numpy as np

    from core.structures import DetBatch, DetSample, Instances

#: The contracts' version: the kernel's ``major.minor``. A plugin declares the range it was
#: written for in its dependency on ``plugdet`` (e.g. ``plugdet>=0.2,<0.3``).
PLUGIN_API_VERSION = "0.2"

#: ``AssignResult.gt_inds`` of a prior excluded from training.
IGNORE = -1
#: ``AssignResult.gt_inds`` of a background prior; ``i + 1`` means matched to gt box ``i``.
NEGATIVE = 0


# ---- data passed between stages ----------------------------------------------------------


@attrs.frozen
class Priors:
    """The priors a head predicts for: anchor boxes or points, per level, shared by the batch
    or per image.

    :ivar points: ``(N, 2)`` or, per image, ``(B, N, 2)`` prior centres ``(x, y)``.
    :ivar strides: ``(N,)`` or ``(B, N)`` float stride (input pixels per cell) of each prior's
        level; 0 for priors not on a grid (gt boxes added as proposals).
    :ivar level_sizes: number of priors of each level, in order; sums to ``N``.
    :ivar boxes: ``(N, 4)`` or ``(B, N, 4)`` xyxy boxes (anchors, proposals); ``None`` for
        point priors (anchor-free heads).
    :ivar valid: ``(B, N)`` bool, False for padding of per-image priors; ``None`` when all are.
    """

    points: Tensor
    strides: Tensor
    level_sizes: tuple[int, ...]
    boxes: Tensor | None = None
    valid: Tensor | None = None

    @classmethod
    def from_levels(cls, levels: Sequence[Tensor], strides: Sequence[float]) -> Priors:
        """Concatenate per-level ``(N_l, 4)`` boxes or ``(N_l, 2)`` points.

        :param levels: one tensor per level, as a prior generator's ``grid_priors`` returns.
        :param strides: the stride of each level.
        """
        if len(levels) != len(strides):
            raise ValueError(f"{len(levels)} levels but {len(strides)} strides")
        flat = torch.cat(list(levels))
        sizes = tuple(len(level) for level in levels)
        stride = torch.cat([
            torch.full((size,), float(s), dtype=flat.dtype, device=flat.device)
            for size, s in zip(sizes, strides, strict=True)
        ])
        if flat.shape[-1] == 4:
            return cls(points=(flat[:, :2] + flat[:, 2:]) / 2, strides=stride,
                       level_sizes=sizes, boxes=flat)
        if flat.shape[-1] == 2:
            return cls(points=flat, strides=stride, level_sizes=sizes)
        raise ValueError(f"priors must be (N, 4) boxes or (N, 2) points, got {tuple(flat.shape)}")

    @property
    def num_priors(self) -> int:
        """``N``."""
        return int(self.points.shape[-2])

    @property
    def per_image(self) -> bool:
        """Whether each image has its own priors (``(B, N, ...)`` tensors)."""
        return self.points.ndim == 3

    @property
    def is_points(self) -> bool:
        """Whether the priors are points (no boxes)."""
        return self.boxes is None

    def valid_mask(self, num_images: int) -> Tensor:
        """``(B, N)`` bool, True for real priors."""
        if self.valid is not None:
            return self.valid
        return torch.ones((num_images, self.num_priors), dtype=torch.bool,
                          device=self.points.device)

    def split_levels(self, values: Tensor, dim: int = 0) -> list[Tensor]:
        """Split ``values`` along its prior dimension ``dim`` (size ``N``) into levels."""
        return list(torch.split(values, list(self.level_sizes), dim=dim))

    def level_of(self) -> Tensor:
        """``(N,)`` int64 level index of every prior."""
        sizes = torch.tensor(self.level_sizes, device=self.points.device)
        return torch.repeat_interleave(torch.arange(len(sizes), device=sizes.device), sizes)


@attrs.frozen
class Predictions:
    """What the network predicts for every prior, detached, for assigners that need it.

    :ivar scores: ``(B, N, C)`` class probabilities.
    :ivar boxes: ``(B, N, 4)`` decoded xyxy boxes.
    """

    scores: Tensor
    boxes: Tensor


@attrs.frozen
class GTBatch:
    """Ground-truth and ignore boxes of B images padded to the largest count.

    :ivar boxes: ``(B, M, 4)`` float xyxy pixels (padding rows are zero).
    :ivar labels: ``(B, M)`` int64 class indices (padding is 0).
    :ivar valid: ``(B, M)`` bool, True for real boxes.
    :ivar ignore_boxes: ``(B, K, 4)`` float xyxy ignore regions (iscrowd / difficult).
    :ivar ignore_valid: ``(B, K)`` bool, True for real ignore regions.
    """

    boxes: Tensor
    labels: Tensor
    valid: Tensor
    ignore_boxes: Tensor
    ignore_valid: Tensor

    @property
    def num_gts(self) -> Tensor:
        """``(B,)`` int64 number of real boxes per image."""
        return self.valid.sum(dim=1)

    @classmethod
    def from_lists(cls, boxes: Sequence[Tensor], labels: Sequence[Tensor],
                   ignore_boxes: Sequence[Tensor] | None = None) -> GTBatch:
        """Pad per-image ``(M_i, 4)`` boxes, ``(M_i,)`` labels and ``(K_i, 4)`` ignore boxes."""
        device = boxes[0].device
        if ignore_boxes is None:
            ignore_boxes = [torch.zeros((0, 4), device=device) for _ in boxes]
        valid = _lengths_mask([len(b) for b in boxes], device)
        ignore_valid = _lengths_mask([len(b) for b in ignore_boxes], device)
        return cls(_pad([b.float().reshape(-1, 4) for b in boxes]),
                   _pad([lab.long().reshape(-1) for lab in labels]), valid,
                   _pad([b.float().reshape(-1, 4) for b in ignore_boxes]), ignore_valid)

    @classmethod
    def from_samples(cls, samples: Sequence[DetSample], device: torch.device | str) -> GTBatch:
        """Pad the ``gt`` and ``ignore`` instances of ``samples`` (``img_shape`` pixels)."""
        return cls.from_lists([s.gt.boxes.to(device) for s in samples],
                              [s.gt.labels.to(device) for s in samples],
                              [s.ignore.boxes.to(device) for s in samples])


def _pad(tensors: Sequence[Tensor]) -> Tensor:
    return pad_sequence(list(tensors), batch_first=True, padding_value=0)


def _lengths_mask(lengths: Sequence[int], device: torch.device | str) -> Tensor:
    """``(B, max(lengths))`` bool, True for the first ``lengths[b]`` entries of row ``b``."""
    counts = torch.tensor(list(lengths), device=device)
    width = int(counts.max()) if len(lengths) else 0
    return torch.arange(width, device=device)[None, :] < counts[:, None]


@attrs.frozen
class AssignResult:
    """Assignment of N priors in each of B images.

    :ivar gt_inds: ``(B, N)`` int64: ``-1`` ignored, ``0`` negative, ``i + 1`` positive for gt
        box ``i`` (index into the padded ``(B, M)`` ground truth).
    :ivar max_overlaps: ``(B, N)`` float: IoU with the best gt (``-1`` for priors ignored via
        ignore regions, 0 when the image has no gt).
    :ivar labels: ``(B, N)`` int64: class of the matched gt, ``-1`` for non-positives.
    :ivar num_gts: ``(B,)`` int64 number of real gt boxes per image.
    :ivar quality: ``(B, N)`` float soft target of each positive (IoU, alignment metric) for
        heads that train on quality; ``None`` when the assigner has none.
    """

    gt_inds: Tensor
    max_overlaps: Tensor
    labels: Tensor
    num_gts: Tensor
    quality: Tensor | None = None

    @property
    def pos_mask(self) -> Tensor:
        """``(B, N)`` bool, positive priors."""
        return self.gt_inds > NEGATIVE

    @property
    def neg_mask(self) -> Tensor:
        """``(B, N)`` bool, negative priors."""
        return self.gt_inds == NEGATIVE

    @property
    def ignore_mask(self) -> Tensor:
        """``(B, N)`` bool, ignored priors."""
        return self.gt_inds == IGNORE

    @property
    def matched_gt_index(self) -> Tensor:
        """``(B, N)`` int64 0-based index of the matched gt, clamped to 0 for non-positives."""
        return (self.gt_inds - 1).clamp(min=0)


@attrs.frozen
class SampleResult:
    """Which of the N' priors of each of B images are used as positives and negatives.

    :ivar pos_mask: ``(B, N')`` bool, sampled positives.
    :ivar neg_mask: ``(B, N')`` bool, sampled negatives (disjoint from ``pos_mask``).
    :ivar assign_result: the assignment the samples come from, with ``(B, N')`` tensors.
    :ivar priors: the priors of the samples: the assigner's, or per image with gt boxes
        appended as proposals (``N' = N + M``).
    """

    pos_mask: Tensor
    neg_mask: Tensor
    assign_result: AssignResult
    priors: Priors

    @property
    def num_pos(self) -> int:
        """Sampled positives over the whole batch."""
        return int(self.pos_mask.sum())

    @property
    def num_neg(self) -> int:
        """Sampled negatives over the whole batch."""
        return int(self.neg_mask.sum())


# ---- checkpoints of other frameworks (stage ``weight_converter``) -------------------------


@attrs.frozen(eq=False)
class PeerCheckpoint:
    """A checkpoint as its framework wrote it, read without running any of its code.

    :ivar source: ``"plugdet"``, ``"torchvision"``, ``"mmdet"`` (MMDetection and MMYOLO),
        ``"ultralytics"``, ``"yolov5"`` or ``"safetensors"``.
    :ivar state: the file's own key names -> tensors (half precision widened to float32):
        ultralytics / YOLOv5 ``DetectionModel.state_dict()`` names (``model.0.conv.weight``),
        torchvision's model keys, MMDetection's (``backbone...``, ``bbox_head...``).
    :ivar classes: class names in the checkpoint's row order (no background), when the file
        says.
    :ivar architecture: what the file says it is: a torchvision model name
        (``retinanet_resnet50_fpn``), the ultralytics / YOLOv5 model yaml (``yolov8n.yaml``),
        the MMDetection config's model type (``RetinaNet``); ``""`` when unknown.
    :ivar meta: the file's other information, plain values only (str, int, float, bool,
        None, list, tuple, dict).
    :ivar path: the file or URI read.
    """

    source: str
    state: dict[str, Tensor]
    classes: tuple[str, ...] | None
    architecture: str = ""
    meta: dict[str, Any] = attrs.field(factory=dict)
    path: str = ""

    def describe(self) -> str:
        """``"torchvision retinanet_resnet50_fpn"``: the source and the architecture."""
        return f"{self.source} {self.architecture}".strip()


@attrs.frozen
class ClassRows:
    """Where the classes sit along dim 0 of a parameter: ``groups`` blocks (e.g. anchors) of
    ``stride`` rows each, rows ``offset .. offset + C - 1`` of each block the ``C`` classes;
    the other rows of a block are not class rows and keep their place relative to the
    block's start (before the classes) or end (after them).

    ``stride`` None means ``dim 0 / groups``. RetinaNet's class conv (``A`` anchors,
    anchor-major): ``ClassRows(groups=A)``. YOLOv5 (per anchor 4 box, 1 objectness, ``C``
    classes): ``ClassRows(groups=3, stride=5 + C, offset=5)``. Faster R-CNN's ``fc_cls``
    (``C`` classes then background): ``ClassRows()``; its background row is kept.

    ``rows_per_class``: each class is a block of that many consecutive rows (the classes then
    take rows ``offset .. offset + C * rows_per_class - 1`` of a block). Faster R-CNN's
    ``fc_reg`` (``C`` class-major blocks of 4 box deltas): ``ClassRows(rows_per_class=4)``.
    """

    groups: int = 1
    stride: int | None = None
    offset: int = 0
    rows_per_class: int = 1


@attrs.frozen(eq=False)
class ConvertedState:
    """A checkpoint in plugdet's key names and layouts.

    :ivar state: plugdet's key names -> tensors.
    :ivar class_rows: the keys of ``state`` that hold per-class rows (weights and biases).
    :ivar classes: the checkpoint's classes in row order, when known.
    """

    state: dict[str, Tensor]
    class_rows: dict[str, ClassRows] = attrs.field(factory=dict)
    classes: tuple[str, ...] | None = None


# ---- stage contracts ---------------------------------------------------------------------


@runtime_checkable
class Backbone(Protocol):
    """Stage ``backbone``: an ``nn.Module`` mapping images ``(B, 3, H, W)`` to a tuple of
    feature maps ``(B, C_i, H / s_i, W / s_i)``, finest first."""

    def forward(self, images: Tensor) -> tuple[Tensor, ...]: ...

    if TYPE_CHECKING:  # what ``nn.Module.__call__`` runs; registration checks ``forward``
        def __call__(self, images: Tensor) -> tuple[Tensor, ...]: ...


@runtime_checkable
class Neck(Protocol):
    """Stage ``neck``: an ``nn.Module`` mapping a tuple of feature maps to a tuple of feature
    maps (e.g. an FPN's pyramid levels)."""

    def forward(self, feats: tuple[Tensor, ...]) -> tuple[Tensor, ...]: ...

    if TYPE_CHECKING:  # what ``nn.Module.__call__`` runs; registration checks ``forward``
        def __call__(self, feats: tuple[Tensor, ...]) -> tuple[Tensor, ...]: ...


@runtime_checkable
class EnhanceLayer(Protocol):
    """Stage ``enhance``: an ``nn.Module`` inserted into a backbone or neck,
    ``x (B, C, H, W) -> (B, C', H, W)``; its factory takes ``in_channels``."""

    def forward(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class PriorGenerator(Protocol):
    """Stage ``prior_generator``: the priors of every level of a feature pyramid.

    ``grid_priors`` returns one tensor per level: ``(H_l * W_l * A_l, 4)`` xyxy anchors or
    ``(H_l * W_l * A_l, 2)`` points, cell-major with the ``A_l`` priors of a cell inner.
    """

    strides: Sequence[int]
    num_base_priors: Sequence[int]

    def grid_priors(self, featmap_sizes: Sequence[tuple[int, int]],
                    device: torch.device | str = "cpu") -> list[Tensor]: ...


@runtime_checkable
class Assigner(Protocol):
    """Stage ``assigner``: which priors are positive (for which gt), negative or ignored.

    ``uses_predictions`` tells the head whether to pass ``pred`` (dynamic assigners such as
    SimOTA or TaskAligned); static assigners ignore it and say False.
    """

    uses_predictions: bool

    def assign(self, priors: Priors, gt: GTBatch,
               pred: Predictions | None = None) -> AssignResult: ...


@runtime_checkable
class Sampler(Protocol):
    """Stage ``sampler``: which assigned priors count in the loss."""

    def sample(self, assign_result: AssignResult, priors: Priors, gt: GTBatch) -> SampleResult:
        ...


@runtime_checkable
class BoxCoder(Protocol):
    """Stage ``coder``: boxes <-> regression targets relative to priors.

    ``priors`` rows are ``(..., 4)`` boxes or ``(..., 2)`` points; ``strides`` (same leading
    shape) is given to coders that work in units of the stride. ``encode_size`` is the number
    of values a target has (4 for deltas and distances).
    """

    encode_size: int

    def encode(self, priors: Tensor, boxes: Tensor, strides: Tensor | None = None) -> Tensor:
        ...

    def decode(self, priors: Tensor, deltas: Tensor, max_shape: Tensor | None = None,
               strides: Tensor | None = None) -> Tensor: ...


@runtime_checkable
class Loss(Protocol):
    """Stage ``loss``: an ``nn.Module`` called by heads as
    ``loss(pred, target, weight=None, avg_factor=None) -> scalar``.

    ``weight`` broadcasts to the element losses (or is ``(N,)`` row weights); ``avg_factor``
    replaces the element count of the mean (heads pass the number of positives).

    A classification loss declares the targets it takes in the class attribute
    ``cls_targets``: ``"labels"`` (``(N,)`` int64 classes, ``C`` = background), ``"soft"``
    (``(N, C)`` float ``one_hot * quality`` in ``[0, 1]``, 0 for negatives; the quality is
    ``AssignResult.quality``, or the IoU of each positive's predicted box with its gt box) or
    ``"labels_or_soft"``. A loss without it takes labels. A head gives the form its loss
    takes; a head and loss with no form in common are refused when the model is built.
    """

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None) -> Tensor: ...

    if TYPE_CHECKING:  # what ``nn.Module.__call__`` runs; registration checks ``forward``
        def __call__(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                     avg_factor: float | Tensor | None = None) -> Tensor: ...


@runtime_checkable
class PostProcess(Protocol):
    """Stage ``postprocess``: dense per-prior scores and boxes -> detections per image.

    ``select`` picks candidates from per-level ``(B, N_l, C)`` scores; the head decodes
    the candidates' boxes; ``__call__`` suppresses and returns one ``Instances`` per image.
    """

    def select(self, level_scores: list[Tensor]) -> Any: ...

    def __call__(self, boxes: Tensor, candidates: Any) -> list[Instances]: ...


@runtime_checkable
class Head(Protocol):
    """Stage ``head``: features -> losses and detections.

    A dense head's ``loss(feats, samples)`` returns a dict whose ``loss*`` entries are summed
    into the training loss; every other entry (e.g. ``num_pos``) is a 0-d tensor the engine
    logs as ``train/<key>``. ``predict(feats, samples)`` returns one ``Instances`` per image
    in ``img_shape`` pixels. RoI heads take the proposals as a second argument.
    """

    def loss(self, *args: Any) -> dict[str, Tensor]: ...

    def predict(self, *args: Any) -> list[Instances]: ...


@runtime_checkable
class DenseHead(Protocol):
    """What a dense head built on :class:`core.models.heads.DenseHead` provides.

    ``forward(feats)`` returns its raw per-level outputs; ``get_assignments`` runs the
    training assignment for visualisation and statistics.
    """

    def forward(self, feats: tuple[Tensor, ...]) -> Any: ...

    def loss(self, feats: tuple[Tensor, ...], samples: list[DetSample]) -> dict[str, Tensor]:
        ...

    def predict(self, feats: tuple[Tensor, ...], samples: list[DetSample]) -> list[Instances]:
        ...


@runtime_checkable
class ProposalHead(Protocol):
    """A two-stage detector's first head (stage ``head``): losses and per-image proposals.

    Proposals are ``Instances`` per image in ``img_shape`` pixels with objectness ``scores``.
    """

    def loss_and_proposals(self, feats: tuple[Tensor, ...], samples: list[DetSample]
                           ) -> tuple[dict[str, Tensor], list[Instances]]: ...

    def predict(self, feats: tuple[Tensor, ...], samples: list[DetSample]) -> list[Instances]:
        ...


@runtime_checkable
class RoIHead(Protocol):
    """A two-stage detector's second head (stage ``head``): refines proposals."""

    def loss(self, feats: tuple[Tensor, ...], proposals: list[Instances],
             samples: list[DetSample]) -> dict[str, Tensor]: ...

    def predict(self, feats: tuple[Tensor, ...], proposals: list[Instances],
                samples: list[DetSample]) -> list[Instances]: ...


@runtime_checkable
class Detector(Protocol):
    """Stage ``detector`` (the config's ``model`` table): an ``nn.Module`` with
    ``loss(batch) -> dict`` (as :class:`Head`) and ``predict(batch) -> list[Instances]`` in
    original image pixels."""

    def loss(self, batch: DetBatch) -> dict[str, Tensor]: ...

    def predict(self, batch: DetBatch) -> list[Instances]: ...


@runtime_checkable
class Dataset(Protocol):
    """Stage ``dataset``: indexable ``DetSample`` objects with ``metainfo["classes"]``."""

    @property
    def metainfo(self) -> dict[str, Any]: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


@runtime_checkable
class Transform(Protocol):
    """Stage ``transform``: ``transform(sample, rng) -> sample`` (or ``transform(sample)``);
    boxes follow every geometric change of the image."""

    def __call__(self, sample: DetSample, rng: np.random.Generator) -> DetSample: ...


@runtime_checkable
class Metric(Protocol):
    """Stage ``metric``: ``reset()``, ``process(samples)`` with predictions in
    ``sample.pred``, ``evaluate() -> {"prefix/name": value}``. The engine sets
    ``dataset_meta`` (classes, ...) before the first ``process``."""

    def reset(self) -> None: ...

    def process(self, samples: list[DetSample]) -> None: ...

    def evaluate(self) -> dict[str, float]: ...


@runtime_checkable
class VisBackend(Protocol):
    """Stage ``vis_backend``: where the Visualizer's records go. Subclass
    :class:`core.visualization.backends.base.BaseVisBackend`: it supplies defaults for
    everything but ``add_scalars``."""

    def add_scalars(self, scalars: dict[str, float], step: int = 0) -> None: ...

    def add_image(self, name: str, image: np.ndarray, step: int = 0) -> None: ...

    def add_config(self, config: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class RunnerHook(Protocol):
    """Stage ``hook``: reacts to runner events. Subclass :class:`core.engine.hooks.base.Hook`
    and override the events you need (``before_run``, ``after_train_iter``, ...); hooks run
    in ascending ``priority``."""

    priority: int

    def before_run(self, runner: Any) -> None: ...

    def after_run(self, runner: Any) -> None: ...


@runtime_checkable
class WeightConverter(Protocol):
    """Stage ``weight_converter``: maps one framework's checkpoints of one architecture to
    plugdet's keys (``core.weights`` reads the file, picks the converter and fits the result
    to the model, classes by name).

    ``name`` is the registered name (``"torchvision/retinanet_resnet50_fpn"``), ``source``
    the :attr:`PeerCheckpoint.source` it reads, ``config`` the shipped config that builds
    this architecture, ``licence`` that of the published weights (``"BSD-3-Clause"``).
    ``accepts`` looks at the checkpoint's source, architecture or keys and at the model;
    ``convert`` raises :class:`~core.errors.CheckpointError` naming the file and listing
    missing, unexpected and mis-shaped keys when the file does not fit.
    """

    name: str
    source: str
    config: str
    licence: str

    def accepts(self, checkpoint: PeerCheckpoint, model: nn.Module) -> bool: ...

    def convert(self, checkpoint: PeerCheckpoint, model: nn.Module) -> ConvertedState: ...


# ---- checking a component against its contract -------------------------------------------

#: Members checked at registration, per protocol: name -> parameters it must accept.
_PARAMETERS: dict[tuple[type, str], tuple[str, ...]] = {
    (Loss, "forward"): ("weight", "avg_factor"),
    (Assigner, "assign"): ("pred",),
}
_DUNDERS_KEPT = ("__call__", "__len__", "__getitem__")


def protocol_members(protocol: type) -> list[str]:
    """The members (methods and attributes) a protocol declares, in declaration order."""
    names: list[str] = []
    for klass in reversed(protocol.__mro__):
        if klass is Protocol or not getattr(klass, "_is_protocol", False):
            continue
        for name in [*getattr(klass, "__annotations__", {}), *vars(klass)]:
            keep = not name.startswith("_") or name in _DUNDERS_KEPT
            if keep and name not in names:
                names.append(name)
    return names


def _accepts(function: Callable[..., Any], names: tuple[str, ...]) -> list[str]:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return []
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return []
    return [name for name in names if name not in parameters]


def _class_member(klass: type, name: str) -> Any:
    """``name`` as instances of ``klass`` would see it from their class, or None."""
    for owner in klass.__mro__:
        if owner is not object and name in vars(owner):
            return vars(owner)[name]
    return None


def missing_members(protocol: type, candidate: object) -> list[str]:
    """What ``candidate`` (a class, or a built component) lacks of ``protocol``.

    A class is checked for the protocol's methods (data attributes are usually set in
    ``__init__`` and are checked on the built component).

    :returns: descriptions such as ``"assign"`` or ``"forward(avg_factor=...)"``; empty when
        the candidate satisfies the contract.
    """
    missing = []
    for name in protocol_members(protocol):
        is_method = inspect.isfunction(getattr(protocol, name, None))
        if isinstance(candidate, type):
            if not is_method:
                continue
            member = _class_member(candidate, name)
        else:
            member = getattr(candidate, name, None)
        if member is None:
            missing.append(name)
            continue
        required = _PARAMETERS.get((protocol, name))
        if required and callable(member):
            missing.extend(f"{name}({p}=...)" for p in _accepts(member, required))
    return missing
