"""The shared path of dense heads: priors, flattened levels, assign -> sample -> targets,
losses with ``avg_factor``, and test-time decode -> top-k -> NMS.

A head subclasses :class:`DenseHead`, builds its layers and writes ``forward``. A head with an
objectness branch sets :attr:`DenseHead.with_objectness` and gets the objectness into the
assigner's and the test-time scores; a head with other losses overrides
:meth:`DenseHead.loss_by_feat` with the base signature and starts it with
:meth:`DenseHead.loss_inputs` (priors -> flat outputs -> targets -> decoded positives).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Unpack

import attrs
import torch
from torch import Tensor, nn

from core.contracts import (
    GTBatch,
    PostProcess,
    Predictions,
    Priors,
    SampleResult,
)
from core.errors import ConfigError
from core.models.build import DenseHeadParts, build_part
from core.models.heads.assign_stats import assignment_stats
from core.models.losses.iou_loss import aligned_iou
from core.models.losses.targets import TargetForm, cls_target_form, one_hot_without_background
from core.models.precision import float32_region, levels_in_float32
from core.structures import DetSample, Instances

#: Key of the number of positives in a head's loss dict (logged as ``train/num_pos``).
NUM_POS_KEY = "num_pos"
#: Share of counted priors under which the classification loss gathers the counted rows
#: (a sampler's few hundred of ``B * N``) instead of weighing every row.
SPARSE_ROW_SHARE = 0.5
#: Distinct feature-map sizes whose priors a head remembers.
MAX_CACHED_PRIORS = 32


def flatten_level(pred: Tensor, channels: int) -> Tensor:
    """``(B, A * channels, H, W)`` -> ``(B, H * W * A, channels)`` (cell-major, prior inner),
    the prior order of every prior generator."""
    num_images, _, height, width = pred.shape
    pred = pred.view(num_images, -1, channels, height, width).permute(0, 3, 4, 1, 2)
    return pred.reshape(num_images, -1, channels)


def flatten_levels(preds: list[Tensor], channels: int) -> Tensor:
    """Per-level ``(B, A * channels, H_l, W_l)`` -> ``(B, N, channels)``, levels in order."""
    return torch.cat([flatten_level(p, channels) for p in preds], dim=1)


@attrs.frozen
class DenseTargets:
    """What the losses of a batch need, from one assign -> sample pass.

    :ivar priors: the priors of the batch (``N`` of them).
    :ivar gt: the padded ground truth.
    :ivar sampling: sampled positives/negatives, ``(B, N)`` masks.
    :ivar labels: ``(B, N)`` int64 class of each positive, ``num_classes`` elsewhere.
    :ivar row_weight: ``(B * N,)`` weight 1 for counted priors and 0 for ignored ones, or
        ``None`` when every prior counts.
    :ivar pos_image: ``(P,)`` int64 image index of each positive.
    :ivar pos_prior: ``(P,)`` int64 prior index of each positive.
    :ivar pos_gt_boxes: ``(P, 4)`` xyxy box each positive is matched to.
    :ivar counted_rows: ``(K,)`` int64 indices into the ``B * N`` rows of the counted priors
        when they are few (under :data:`SPARSE_ROW_SHARE`, e.g. sampled), else ``None``.
    """

    priors: Priors
    gt: GTBatch
    sampling: SampleResult
    labels: Tensor
    row_weight: Tensor | None
    pos_image: Tensor
    pos_prior: Tensor
    pos_gt_boxes: Tensor
    counted_rows: Tensor | None = None

    @property
    def num_pos(self) -> int:
        """Sampled positives over the batch."""
        return len(self.pos_image)

    @property
    def num_counted(self) -> int:
        """Priors the classification loss counts over the batch (positives and
        negatives)."""
        if self.counted_rows is not None:
            return len(self.counted_rows)
        return self.labels.numel() if self.row_weight is None else int(self.row_weight.sum())

    @property
    def avg_factor(self) -> int:
        """The losses' normaliser: the number of positives (at least 1)."""
        return max(self.num_pos, 1)

    def pos_prior_rows(self) -> Tensor:
        """``(P, 4)`` boxes (or ``(P, 2)`` points) of the positive priors."""
        return _prior_rows(self.priors, self.pos_image, self.pos_prior)

    def pos_strides(self) -> Tensor:
        """``(P,)`` stride of each positive prior."""
        strides = self.priors.strides
        return strides[self.pos_image, self.pos_prior] if strides.ndim == 2 else strides[
            self.pos_prior]


def _prior_rows(priors: Priors, image: Tensor, prior: Tensor) -> Tensor:
    rows = priors.points if priors.boxes is None else priors.boxes
    return rows[image, prior] if priors.per_image else rows[prior]


@attrs.frozen
class Assignments:
    """Which priors are positive for each image, per pyramid level (visualisation, statistics).

    :ivar priors: per level ``(N_l, 4)`` boxes or ``(N_l, 2)`` points.
    :ivar pos_inds: ``pos_inds[i][l]``: ``(P,)`` int64 indices into ``priors[l]`` of the
        positives of image ``i``.
    :ivar pos_gt_inds: ``pos_gt_inds[i][l]``: ``(P,)`` int64 index of the gt box (in
        ``samples[i].gt``) each of those positives is matched to.
    :ivar sample_result: the batched result, ``(B, N)`` masks over all levels.
    """

    priors: list[Tensor]
    pos_inds: list[list[Tensor]]
    pos_gt_inds: list[list[Tensor]]
    sample_result: SampleResult


@attrs.frozen
class DenseLossInputs:
    """What a head's losses work on, computed once per batch by :meth:`DenseHead.loss_inputs`.

    :ivar priors: the batch's priors (``N`` of them).
    :ivar cls: ``(B, N, C)`` class logits.
    :ivar reg: ``(B, N, encode_size)`` box values.
    :ivar obj: ``(B, N, 1)`` objectness logits of a head :attr:`~DenseHead.with_objectness`,
        else None.
    :ivar targets: the assignment and what the losses need of it.
    :ivar pos_boxes: ``(P, 4)`` decoded boxes of the positives (with gradient) for a head
        with ``reg_decoded_bbox``, else None.
    """

    priors: Priors
    cls: Tensor
    reg: Tensor
    obj: Tensor | None
    targets: DenseTargets
    pos_boxes: Tensor | None

    def at_positives(self, values: Tensor) -> Tensor:
        """The ``(P, ...)`` rows of the positives of a ``(B, N, ...)`` tensor."""
        return values[self.targets.pos_image, self.targets.pos_prior]


class DenseHead(nn.Module):
    """Base of dense heads predicting, per prior, ``C`` class logits and ``encode_size`` box
    values. Subclasses define ``forward(feats) -> (cls_scores, bbox_preds)``, each a list of
    per-level ``(B, A * C, H_l, W_l)`` and ``(B, A * encode_size, H_l, W_l)`` maps, and may
    add a third per-level output (``aux_preds`` of :meth:`loss_by_feat` and
    :meth:`predict_by_feat`): the ``(B, A, H_l, W_l)`` objectness logits of a head
    :attr:`with_objectness`, or what the head's own losses need.

    :param num_classes: foreground classes C (sigmoid per class, no background logit).
    :param reg_decoded_bbox: compute ``loss_bbox`` on decoded boxes (IoU-type losses).

    The parts (:class:`DenseHeadParts`, defaults in :attr:`part_defaults`):

    :param prior_generator: anchors or points per level.
    :param assigner: positives/negatives per prior (gets detached predictions when its
        ``uses_predictions`` is true).
    :param sampler: which assigned priors count.
    :param bbox_coder: box targets relative to priors.
    :param loss_cls: classification loss, called with class labels (or, for a loss whose
        ``cls_targets`` is ``"soft"``, :meth:`soft_cls_targets`), row weights and
        ``avg_factor``.
    :param loss_bbox: box loss on encoded targets (or on decoded boxes with
        ``reg_decoded_bbox``), called with ``avg_factor``.
    :param postprocess: test-time selection and NMS.
    """

    #: The forms of class targets the head can give its ``loss_cls``, preferred first
    #: (``"labels"``, ``"soft"``); a head whose own loss code gives one form narrows it.
    cls_target_forms: ClassVar[tuple[TargetForm, ...]] = ("labels", "soft")
    #: ``forward``'s third output is objectness logits: the assigner ranks with, and the
    #: test-time scores are, the class times the objectness probability.
    with_objectness: ClassVar[bool] = False

    #: The default of each part (:class:`DenseHeadParts`) a config or caller leaves out; a
    #: head names every part here or requires it.
    part_defaults: ClassVar[DenseHeadParts] = {}

    def __init__(self, num_classes: int, reg_decoded_bbox: bool = False,
                 **parts: Unpack[DenseHeadParts]) -> None:
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"num_classes: expected a positive int, got {num_classes}")
        given: DenseHeadParts = {**self.part_defaults, **parts}
        missing = [key for key in DenseHeadParts.__annotations__ if key not in given]
        if missing:
            raise ConfigError(f"{type(self).__name__}: no {', '.join(missing)} given and no "
                              "default in its part_defaults")
        self.num_classes = num_classes
        self.prior_generator = build_part("prior_generator", given["prior_generator"],
                                          "prior_generator")
        self.assigner = build_part("assigner", given["assigner"], "assigner")
        self.sampler = build_part("sampler", given["sampler"], "sampler")
        self.bbox_coder = build_part("coder", given["bbox_coder"], "bbox_coder")
        self.loss_cls = build_part("loss", given["loss_cls"], "loss_cls")
        #: The form of class targets ``loss_cls`` gets (see :attr:`cls_target_forms`).
        self.cls_target_form = cls_target_form(self.loss_cls, type(self).__name__,
                                               self.cls_target_forms)
        self.loss_bbox = build_part("loss", given["loss_bbox"], "loss_bbox")
        self.postprocess = build_part("postprocess", given["postprocess"], "postprocess")
        self.reg_decoded_bbox = reg_decoded_bbox
        # (featmap sizes, device) -> priors; they depend only on these.
        self._priors_cache: dict[tuple[tuple[tuple[int, int], ...], str], Priors] = {}
        if getattr(self.sampler, "add_gt_as_proposals", False):
            raise ConfigError("sampler.add_gt_as_proposals: a dense head predicts only for "
                              "its priors; set it to false")

    def require_one_prior_per_cell(self, in_channels: Sequence[int] | None = None) -> None:
        """Raise :class:`ConfigError` unless the prior generator gives one prior per cell and
        level (an anchor-free head) and, when given, ``in_channels`` has one entry per level.
        """
        name = type(self).__name__
        strides = list(self.prior_generator.strides)
        if in_channels is not None and len(strides) != len(in_channels):
            raise ConfigError(f"in_channels: expected one per prior stride {strides}, got "
                              f"{list(in_channels)}")
        if set(self.prior_generator.num_base_priors) != {1}:
            raise ConfigError(f"prior_generator: {name} predicts one point per cell")

    # ---- priors and outputs ------------------------------------------------------------

    def priors(self, featmap_sizes: list[tuple[int, int]], device: torch.device | str
               ) -> Priors:
        """The priors of feature maps of these ``(H_l, W_l)`` sizes."""
        key = (tuple((int(h), int(w)) for h, w in featmap_sizes), str(device))
        if key not in self._priors_cache:
            if len(self._priors_cache) >= MAX_CACHED_PRIORS:
                self._priors_cache.clear()
            levels = self.prior_generator.grid_priors(featmap_sizes, device)
            self._priors_cache[key] = Priors.from_levels(levels, self.prior_generator.strides)
        return self._priors_cache[key]

    def priors_of(self, level_outputs: list[Tensor]) -> Priors:
        """The priors of per-level ``(B, K, H_l, W_l)`` outputs."""
        sizes = [(int(o.shape[-2]), int(o.shape[-1])) for o in level_outputs]
        return self.priors(sizes, level_outputs[0].device)

    @contextmanager
    def float32_outputs(self, feats: tuple[Tensor, ...]) -> Iterator[tuple[list[Tensor], ...]]:
        """``forward(feats)`` (under AMP in half precision) with every output as float32,
        and autocast off inside the block: decoding, assignment, losses and NMS run in
        float32 (:mod:`core.models.precision`)."""
        outputs = levels_in_float32(self(feats))
        with float32_region(feats[0].device):
            yield outputs

    def flat_outputs(self, cls_scores: list[Tensor], bbox_preds: list[Tensor]
                     ) -> tuple[Tensor, Tensor]:
        """``(B, N, C)`` class logits and ``(B, N, encode_size)`` box values."""
        return (flatten_levels(cls_scores, self.num_classes),
                flatten_levels(bbox_preds, self.bbox_coder.encode_size))

    def scores_from_logits(self, logits: Tensor, obj_logits: Tensor | None = None) -> Tensor:
        """``(..., C)`` class probabilities from logits (sigmoid per class), times the
        objectness probability when ``obj_logits`` ``(..., 1)`` is given."""
        scores = logits.sigmoid()
        return scores if obj_logits is None else scores * obj_logits.sigmoid()

    def assigner_scores(self, cls: Tensor, obj: Tensor | None) -> Tensor:
        """``(B, N, C)`` scores a dynamic assigner ranks with (:meth:`scores_from_logits`).

        :param cls: ``(B, N, C)`` detached class logits.
        :param obj: ``(B, N, 1)`` detached objectness logits, or None."""
        return self.scores_from_logits(cls, obj)

    def decode(self, priors: Priors, reg: Tensor, index: Tensor | None = None,
               max_shape: Tensor | None = None) -> Tensor:
        """Decode ``(B, K, encode_size)`` box values of the priors ``index`` ``(B, K)``
        (all priors when None) to ``(B, K, 4)`` xyxy boxes."""
        rows = priors.points if priors.boxes is None else priors.boxes
        strides = priors.strides
        if index is not None:
            if priors.per_image:
                rows = rows.gather(1, index[..., None].expand(-1, -1, rows.shape[-1]))
                strides = strides.gather(1, index)
            else:
                rows, strides = rows[index], strides[index]
        return self.bbox_coder.decode(rows, reg, max_shape=max_shape, strides=strides)

    def predictions(self, priors: Priors, cls: Tensor, reg: Tensor, obj: Tensor | None = None
                    ) -> Predictions | None:
        """Detached :meth:`assigner_scores` and decoded boxes for an assigner that uses
        them, else None.

        :param cls: ``(B, N, C)``; :param reg: ``(B, N, encode_size)``;
        :param obj: ``(B, N, 1)`` objectness logits or None."""
        if not self.assigner.uses_predictions:
            return None
        with torch.no_grad():
            scores = self.assigner_scores(cls.detach(), None if obj is None else obj.detach())
            return Predictions(scores, self.decode(priors, reg.detach()))

    def objectness_levels(self, aux_preds: list[Tensor] | None, num_levels: int
                          ) -> list[Tensor | None]:
        """Per level ``(B, N_l, 1)`` objectness logits from ``forward``'s third output
        (``(B, A, H_l, W_l)`` per level) for a head :attr:`with_objectness`; ``None`` per
        level otherwise."""
        if not self.with_objectness:
            return [None] * num_levels
        if aux_preds is None:
            raise ValueError(f"{type(self).__name__}: with_objectness needs forward's "
                             "objectness logits (aux_preds)")
        return [flatten_level(o, 1) for o in aux_preds]

    # ---- training ----------------------------------------------------------------------

    def targets(self, priors: Priors, samples: list[DetSample],
                pred: Predictions | None = None) -> DenseTargets:
        """Assign, sample and gather what the losses need.

        :param priors: the batch's priors.
        :param samples: with ``gt`` in ``img_shape`` pixels.
        :param pred: detached predictions for dynamic assigners.
        """
        gt = GTBatch.from_samples(samples, priors.points.device)
        assign_result = self.assigner.assign(priors, gt, pred)
        sampling = self.sampler.sample(assign_result, priors, gt)
        counted = sampling.pos_mask | sampling.neg_mask  # (B, N)
        labels = torch.where(sampling.pos_mask, assign_result.labels,
                             torch.full_like(assign_result.labels, self.num_classes))
        num_counted = int(counted.sum())
        row_weight = None if num_counted == counted.numel() else counted.reshape(-1)
        # Few counted rows (a sampler) are gathered; otherwise ignored priors get weight 0
        # (no gathered copy of the (B * N, C) logits).
        counted_rows = (counted.reshape(-1).nonzero().flatten()
                        if num_counted < SPARSE_ROW_SHARE * counted.numel() else None)
        pos_image, pos_prior = sampling.pos_mask.nonzero(as_tuple=True)
        pos_gt = assign_result.gt_inds[pos_image, pos_prior] - 1
        return DenseTargets(priors, gt, sampling, labels, row_weight, pos_image, pos_prior,
                            gt.boxes[pos_image, pos_gt], counted_rows)

    def loss(self, feats: tuple[Tensor, ...], samples: list[DetSample]) -> dict[str, Tensor]:
        """Losses of a batch and the logged scalars (``num_pos``, assigner statistics).

        :param feats: neck outputs, per level ``(B, C_in, H_l, W_l)``.
        :param samples: with ``gt`` in ``img_shape`` coordinates.
        """
        with self.float32_outputs(feats) as outputs:
            return self.loss_by_feat(outputs[0], outputs[1], samples, _aux_preds(outputs))

    def loss_inputs(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                    samples: list[DetSample], aux_preds: list[Tensor] | None = None
                    ) -> DenseLossInputs:
        """The start of every ``loss_by_feat``: the priors of the outputs, the flat outputs,
        the targets (a dynamic assigner ranks with :meth:`assigner_scores`) and, with
        ``reg_decoded_bbox``, the positives' boxes decoded once."""
        priors = self.priors_of(cls_scores)
        cls, reg = self.flat_outputs(cls_scores, bbox_preds)
        obj_levels = [o for o in self.objectness_levels(aux_preds, len(cls_scores))
                      if o is not None]
        obj = torch.cat(obj_levels, dim=1) if obj_levels else None
        targets = self.targets(priors, samples, self.predictions(priors, cls, reg, obj))
        pos_boxes = None
        if self.reg_decoded_bbox:
            pos_boxes = self.bbox_coder.decode(targets.pos_prior_rows(),
                                               reg[targets.pos_image, targets.pos_prior],
                                               strides=targets.pos_strides())
        return DenseLossInputs(priors, cls, reg, obj, targets, pos_boxes)

    def loss_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                     samples: list[DetSample], aux_preds: list[Tensor] | None = None
                     ) -> dict[str, Tensor]:
        """``{"loss_cls", "loss_bbox"}`` from raw outputs (see the class doc) and the
        logged scalars of :meth:`scalars`.

        :param aux_preds: ``forward``'s third per-level output, if it has one (objectness
            logits for a head :attr:`with_objectness`)."""
        inputs = self.loss_inputs(cls_scores, bbox_preds, samples, aux_preds)
        return {"loss_cls": self.cls_loss(inputs), "loss_bbox": self.box_loss(inputs),
                **self.scalars(inputs.targets)}

    def scalars(self, targets: DenseTargets) -> dict[str, Tensor]:
        """What the engine logs next to the losses: ``num_pos`` and the assigner statistics
        of :func:`~core.models.heads.assign_stats.assignment_stats` (``assign/...``)."""
        num_pos = targets.sampling.pos_mask.sum().float()
        return {NUM_POS_KEY: num_pos, **assignment_stats(targets.sampling, targets.gt,
                                                         targets.priors.level_sizes)}

    def cls_loss(self, inputs: DenseLossInputs) -> Tensor:
        """``loss_cls`` of the counted priors of ``inputs.cls`` ``(B, N, C)``: the counted
        rows are gathered when few (``targets.counted_rows``), else ignored rows get
        weight 0.

        The targets are the class labels, or :meth:`soft_cls_targets` when
        :attr:`cls_target_form` is ``"soft"``. Either is normalised by
        ``targets.avg_factor``."""
        cls, targets = inputs.cls, inputs.targets
        logits = cls.reshape(-1, self.num_classes)
        if self.cls_target_form == "soft":
            labels = self.soft_cls_targets(inputs).to(cls.dtype)
        else:
            labels = targets.labels.reshape(-1)
        if targets.counted_rows is not None:
            rows = targets.counted_rows
            return self.loss_cls(logits[rows], labels[rows], avg_factor=targets.avg_factor)
        row_weight = targets.row_weight
        return self.loss_cls(logits, labels,
                             weight=None if row_weight is None else row_weight.to(cls.dtype),
                             avg_factor=targets.avg_factor)

    def soft_cls_targets(self, inputs: DenseLossInputs) -> Tensor:
        """``(B * N, C)`` soft class targets ``one_hot * quality``: each positive's quality
        at its class, 0 elsewhere (negatives, ignored priors). The quality is the assigner's
        ``AssignResult.quality`` when it gives one, else :meth:`pos_iou`."""
        targets = inputs.targets
        quality = targets.sampling.assign_result.quality
        if quality is not None:
            pos_quality = quality[targets.pos_image, targets.pos_prior].detach()
        else:
            pos_quality = self.pos_iou(inputs)
        num_images, num_priors = targets.labels.shape
        soft = pos_quality.new_zeros((num_images * num_priors, self.num_classes))
        rows = targets.pos_image * num_priors + targets.pos_prior
        soft[rows, targets.labels[targets.pos_image, targets.pos_prior]] = pos_quality
        return soft

    def pos_iou(self, inputs: DenseLossInputs) -> Tensor:
        """``(P,)`` IoU of each positive's decoded predicted box with its gt box, detached
        (the soft target of GFL and VarifocalNet)."""
        targets = inputs.targets
        with torch.no_grad():
            if inputs.pos_boxes is not None:
                boxes = inputs.pos_boxes.detach()
            else:
                boxes = self.bbox_coder.decode(targets.pos_prior_rows(),
                                               inputs.at_positives(inputs.reg),
                                               strides=targets.pos_strides())
            return aligned_iou(boxes, targets.pos_gt_boxes)

    def soft_label_cls_loss(self, inputs: DenseLossInputs) -> tuple[Tensor, Tensor, Tensor]:
        """Class loss of ``inputs.cls`` ``(B, N, C)`` against soft labels
        ``one_hot * quality`` (the assigner's soft targets, e.g. task alignment or IoU),
        normalised by the positives' quality sum.

        :returns: ``(loss_cls, pos_quality (P,), quality_sum)``, the sum clamped to >= 1.
        """
        cls, targets = inputs.cls, inputs.targets
        quality = targets.sampling.assign_result.quality
        if quality is None:
            raise ConfigError(f"assigner: {type(self).__name__} needs an assigner with soft "
                              "targets (quality), e.g. TaskAlignedAssigner or "
                              "DynamicSoftLabelAssigner")
        pos_quality = quality[targets.pos_image, targets.pos_prior].to(cls.dtype)
        quality_sum = pos_quality.sum().clamp(min=1.0)
        flat_cls = cls.reshape(-1, self.num_classes)
        soft = one_hot_without_background(targets.labels.reshape(-1), flat_cls)
        soft = soft * quality.reshape(-1, 1).to(cls.dtype)
        row_weight = targets.row_weight
        loss_cls = self.loss_cls(flat_cls, soft,
                                 weight=None if row_weight is None else row_weight.to(cls.dtype),
                                 avg_factor=quality_sum)
        return loss_cls, pos_quality, quality_sum

    def box_loss(self, inputs: DenseLossInputs, weight: Tensor | None = None,
                 avg_factor: float | Tensor | None = None) -> Tensor:
        """``loss_bbox`` of the positives: on their decoded boxes with ``reg_decoded_bbox``,
        else on their box values against the encoded gt.

        :param weight: ``(P,)`` per-positive weights, or None.
        :param avg_factor: the normaliser; the targets' ``avg_factor`` when None."""
        targets = inputs.targets
        avg_factor = targets.avg_factor if avg_factor is None else avg_factor
        if inputs.pos_boxes is not None:
            return self.loss_bbox(inputs.pos_boxes, targets.pos_gt_boxes, weight=weight,
                                  avg_factor=avg_factor)
        encoded = self.bbox_coder.encode(targets.pos_prior_rows(), targets.pos_gt_boxes,
                                         strides=targets.pos_strides())
        return self.loss_bbox(inputs.at_positives(inputs.reg), encoded, weight=weight,
                              avg_factor=avg_factor)

    # ---- testing -----------------------------------------------------------------------

    def predict(self, feats: tuple[Tensor, ...], samples: list[DetSample]) -> list[Instances]:
        """Detections per image in ``img_shape`` coordinates (boxes clipped to it)."""
        with self.float32_outputs(feats) as outputs:
            return self.predict_by_feat(outputs[0], outputs[1], samples, _aux_preds(outputs))

    def predict_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                        samples: list[DetSample], aux_preds: list[Tensor] | None = None,
                        postprocess: PostProcess | None = None) -> list[Instances]:
        """Per-level :meth:`scores_from_logits` (times the objectness of a head
        :attr:`with_objectness`) -> candidates -> decoded boxes -> NMS.

        :param aux_preds: ``forward``'s third per-level output, if it has one.
        :param postprocess: the selection and NMS to use instead of ``self.postprocess``
            (e.g. a proposal head's training-time settings).
        """
        postprocess = self.postprocess if postprocess is None else postprocess
        boxes, candidates = self.decoded_candidates(cls_scores, bbox_preds, samples, aux_preds,
                                                    postprocess)
        return postprocess(boxes, candidates)

    def decoded_candidates(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                           samples: list[DetSample], aux_preds: list[Tensor] | None = None,
                           postprocess: PostProcess | None = None) -> tuple[Tensor, Any]:
        """The steps of :meth:`predict_by_feat` before NMS: ``postprocess.select``'s
        candidates (``prior_inds (B, K)`` among them) and their ``(B, K, 4)`` decoded boxes
        clipped to each ``img_shape``.

        :returns: ``(boxes, candidates)``, the arguments of ``postprocess(...)``."""
        postprocess = self.postprocess if postprocess is None else postprocess
        priors = self.priors_of(cls_scores)
        obj_levels = self.objectness_levels(aux_preds, len(cls_scores))
        level_scores = [self.scores_from_logits(flatten_level(c, self.num_classes), obj)
                        for c, obj in zip(cls_scores, obj_levels, strict=True)]
        candidates = postprocess.select(level_scores)
        reg = flatten_levels(bbox_preds, self.bbox_coder.encode_size)
        index = candidates.prior_inds
        values = reg.gather(1, index[:, :, None].expand(-1, -1, reg.shape[-1]))
        img_shapes = torch.tensor([s.img_shape for s in samples], device=reg.device)
        boxes = self.decode(priors, values, index, max_shape=img_shapes[:, None, :])
        return boxes, candidates

    # ---- insight -----------------------------------------------------------------------

    @torch.no_grad()
    def get_assignments(self, feats: tuple[Tensor, ...], samples: list[DetSample]
                        ) -> Assignments:
        """Positive priors per image and level, as training sees them now (dynamic
        assigners get the current predictions).

        :param feats: neck outputs, per level ``(B, C_in, H_l, W_l)``.
        :param samples: the samples with ``gt`` in ``img_shape`` coordinates.
        """
        with self.float32_outputs(feats) as outputs:
            inputs = self.loss_inputs(outputs[0], outputs[1], samples, _aux_preds(outputs))
            return assignments_by_level(inputs.priors, inputs.targets.sampling)


def _aux_preds(outputs: tuple[list[Tensor], ...]) -> list[Tensor] | None:
    """``forward``'s third per-level output, or None for a head with two."""
    return outputs[2] if len(outputs) > 2 else None


def assignments_by_level(priors: Priors, sampling: SampleResult) -> Assignments:
    """The positives of a batch's ``(B, N)`` sampling split per image and level (for a head
    whose :meth:`DenseHead.get_assignments` computes its own predictions)."""
    level_priors = priors.split_levels(priors.points if priors.boxes is None else priors.boxes)
    pos_inds, pos_gt_inds = [], []
    for image_pos, image_gt_inds in zip(sampling.pos_mask, sampling.assign_result.gt_inds,
                                        strict=True):
        levels = priors.split_levels(image_pos)
        level_gt = priors.split_levels(image_gt_inds)
        pos_inds.append([mask.nonzero().flatten() for mask in levels])
        pos_gt_inds.append([g[mask] - 1 for g, mask in zip(level_gt, levels, strict=True)])
    return Assignments(level_priors, pos_inds, pos_gt_inds, sampling)
