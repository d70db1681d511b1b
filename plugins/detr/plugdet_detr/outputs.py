"""The data a DETR-style network hands to its criterion: predictions, targets, denoising pairs."""

from __future__ import annotations

import attrs
from torch import Tensor


@attrs.frozen(eq=False)
class DenoisingGroups:
    """Which denoising queries reconstruct which ground-truth boxes.

    :ivar num_queries: Qd, denoising queries per image (``num_groups * 2 * max_gt``).
    :ivar num_groups: G.
    :ivar positive_queries: per image, ``(P_i,)`` int64 indices in ``[0, Qd)`` of the positive
        (lightly noised) queries, ``P_i = G * n_i``.
    :ivar positive_targets: per image, ``(P_i,)`` int64 index of the gt box each reconstructs.
    """

    num_queries: int
    num_groups: int
    positive_queries: list[Tensor]
    positive_targets: list[Tensor]


@attrs.frozen(eq=False)
class DetrTargets:
    """Ground truth of B images, normalised by the padded network input.

    :ivar labels: per image, ``(n_i,)`` int64 class indices in ``[0, C)``.
    :ivar boxes: per image, ``(n_i, 4)`` float ``cx, cy, w, h`` in ``[0, 1]`` of the padded
        network input (pixel boxes divided by its width and height).
    """

    labels: list[Tensor]
    boxes: list[Tensor]


@attrs.frozen(eq=False)
class DetrOutputs:
    """Predictions of every decoder layer, the encoder proposals and the denoising queries.

    :ivar logits: ``(L, B, Q, C)`` raw class logits of every decoder layer (last = final).
    :ivar boxes: ``(L, B, Q, 4)`` sigmoid-space ``cx, cy, w, h`` in ``(0, 1)``.
    :ivar enc_logits: ``(B, Q, C)`` class logits of the encoder's selected top-Q proposals.
    :ivar enc_boxes: ``(B, Q, 4)`` boxes of those proposals, ``cx, cy, w, h``.
    :ivar dn_logits: ``(L, B, Qd, C)`` class logits of the denoising queries, or None.
    :ivar dn_boxes: ``(L, B, Qd, 4)`` boxes of the denoising queries, or None.
    :ivar dn: the denoising pairs, or None (training with denoising only).
    :ivar query_inds: ``(B, Q)`` int64 the memory position (anchor) each matching query was
        selected from, an index into the ``N = sum H_l W_l`` flattened levels; None when
        unknown.
    """

    logits: Tensor
    boxes: Tensor
    enc_logits: Tensor
    enc_boxes: Tensor
    dn_logits: Tensor | None = None
    dn_boxes: Tensor | None = None
    dn: DenoisingGroups | None = None
    query_inds: Tensor | None = None
