"""Contrastive denoising queries: noised copies of the ground truth fed to the decoder in
training, positives (small box noise) to be reconstructed, negatives (larger noise) to be
rejected, in groups that do not see each other."""

from __future__ import annotations

import attrs
import torch
from torch import Tensor, nn
from torchvision.ops import box_convert

from plugdet_detr.outputs import DenoisingGroups, DetrTargets

#: The box of the padding queries of a batch without boxes (cx, cy, w, h).
EMPTY_BATCH_BOX = (0.5, 0.5, 0.1, 0.1)


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """``log(x / (1 - x))`` with ``x`` clamped to ``[0, 1]`` and both terms to ``>= eps``."""
    x = x.clamp(0.0, 1.0)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


@attrs.frozen(eq=False)
class DenoisingQueries:
    """The denoising part of the decoder input.

    :ivar content: ``(B, Qd, C)`` embedded (noised) labels.
    :ivar boxes_unact: ``(B, Qd, 4)`` noised boxes ``cx, cy, w, h`` in logit space.
    :ivar attn_mask: ``(Qd + Q, Qd + Q)`` bool self-attention mask, True = blocked: matching
        queries (the last Q) do not see denoising ones, groups do not see each other.
    :ivar groups: which queries reconstruct which boxes, for the criterion.
    """

    content: Tensor
    boxes_unact: Tensor
    attn_mask: Tensor
    groups: DenoisingGroups


def denoising_attn_mask(num_groups: int, group_size: int, num_queries: int,
                        device: torch.device | None = None) -> Tensor:
    """``(Qd + Q, Qd + Q)`` bool, True = blocked, ``Qd = num_groups * group_size``: a
    denoising query sees its own group and the matching queries; a matching query sees only
    matching queries."""
    num_dn = num_groups * group_size
    mask = torch.zeros(num_dn + num_queries, num_dn + num_queries, dtype=torch.bool,
                       device=device)
    group = torch.arange(num_dn, device=device) // group_size
    mask[:num_dn, :num_dn] = group[:, None] != group[None, :]
    mask[num_dn:, :num_dn] = True
    return mask


def contrastive_denoising(targets: DetrTargets, num_classes: int, num_queries: int,
                          class_embed: nn.Embedding, num_denoising: int = 100,
                          label_noise_ratio: float = 0.5, box_noise_scale: float = 1.0
                          ) -> DenoisingQueries | None:
    """Build the denoising queries of a batch (random noise from torch's global generator).

    With ``M`` the most boxes of an image, there are ``G = max(1, num_denoising // M)`` groups
    of ``2 M`` queries: ``M`` positives then ``M`` negatives, each the image's boxes padded to
    ``M`` (padding gets the label ``num_classes``, the embedding's padding row). A label is
    replaced by a random class with probability ``label_noise_ratio / 2``. Each corner moves
    by ``u * (w, h) / 2 * box_noise_scale`` with a random sign, ``u`` uniform in ``[0, 1)``
    for positives and ``[1, 2)`` for negatives, then boxes are clipped to ``[0, 1]``.

    A batch without any box gets one group of two padding queries (box ``(0.5, 0.5, 0.1,
    0.1)``, no positives), so that the denoising path and its losses exist on every rank of a
    distributed run whatever its data.

    :param targets: the normalised ground truth.
    :param class_embed: ``num_classes + 1`` rows (the last the padding row).
    :returns: the queries, or None with ``num_denoising`` 0.
    """
    if num_denoising <= 0:
        return None
    counts = [len(labels) for labels in targets.labels]
    device = targets.boxes[0].device
    batch = len(counts)
    most = max(max(counts, default=0), 1)
    num_groups = max(1, num_denoising // most) if any(counts) else 1
    labels = torch.full((batch, most), num_classes, dtype=torch.long, device=device)
    boxes = torch.zeros(batch, most, 4, device=device)
    if not any(counts):
        boxes[...] = torch.tensor(EMPTY_BATCH_BOX, device=device)
    valid = torch.zeros(batch, most, dtype=torch.bool, device=device)
    for image, count in enumerate(counts):
        labels[image, :count] = targets.labels[image]
        boxes[image, :count] = targets.boxes[image]
        valid[image, :count] = True
    repeats = 2 * num_groups
    labels, valid = labels.tile(1, repeats), valid.tile(1, repeats)
    boxes = boxes.tile(1, repeats, 1)
    # per query: 0 positive, 1 negative
    negative = (torch.arange(labels.shape[1], device=device) // most % 2).to(boxes.dtype)
    if label_noise_ratio > 0:
        flip = torch.rand(labels.shape, device=device) < label_noise_ratio * 0.5
        random_labels = torch.randint_like(labels, 0, num_classes)
        labels = torch.where(flip & valid, random_labels, labels)
    if box_noise_scale > 0:
        corners = box_convert(boxes, "cxcywh", "xyxy")
        half_size = (boxes[..., 2:] * 0.5).tile(1, 1, 2) * box_noise_scale
        sign = torch.randint_like(boxes, 0, 2) * 2.0 - 1.0
        magnitude = torch.rand_like(boxes) + negative[None, :, None]
        corners = (corners + sign * magnitude * half_size).clamp(0.0, 1.0)
        boxes = box_convert(corners, "xyxy", "cxcywh")
    positive_queries, positive_targets = [], []
    for count in counts:
        index = torch.arange(count, device=device)
        starts = torch.arange(num_groups, device=device) * 2 * most
        positive_queries.append((starts[:, None] + index[None, :]).flatten())
        positive_targets.append(index.tile(num_groups))
    groups = DenoisingGroups(num_queries=repeats * most, num_groups=num_groups,
                             positive_queries=positive_queries,
                             positive_targets=positive_targets)
    return DenoisingQueries(
        content=class_embed(labels),
        boxes_unact=inverse_sigmoid(boxes),
        attn_mask=denoising_attn_mask(num_groups, 2 * most, num_queries, device),
        groups=groups)
