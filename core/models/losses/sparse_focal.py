"""Summed sigmoid focal loss from integer labels, without a one-hot target.

With one-hot targets almost every element of the ``(N, C)`` logits is a negative. The summed
loss is therefore computed as "every element is a negative" plus a correction at the ``P``
positive elements (``P`` = number of foreground labels, a few hundred). Optional per-row
weights (0 for ignored priors) scale each row, so ignored rows need no gathered copy of the
logits. The dense part needs no target tensor and its gradient has a closed form, so the
backward pass recomputes it from the logits instead of keeping the dozen intermediates of the
element-wise formula. The result equals
``(torchvision.ops.sigmoid_focal_loss(logits, one_hot, alpha, gamma) * w[:, None]).sum()``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

#: Rows per block of the dense part: a block of ``(rows, C)`` floats stays in the CPU cache
#: between the element-wise steps.
BLOCK_ROWS = 4096


def _class_weights(alpha: float) -> tuple[float, float]:
    """``(positive, negative)`` weights: ``(alpha, 1 - alpha)``, or ``(1, 1)`` for
    ``alpha < 0`` (no weighting)."""
    return (alpha, 1.0 - alpha) if alpha >= 0 else (1.0, 1.0)


def _negative_loss(logits: Tensor, gamma: float) -> Tensor:
    """Unweighted focal loss of target 0: ``p ** gamma * -log(1 - p)``, same shape."""
    return torch.sigmoid(logits).pow(gamma) * F.softplus(logits)


def _negative_grad(logits: Tensor, gamma: float) -> Tensor:
    """``d/dx`` of :func:`_negative_loss`: ``p ** gamma * (p + gamma * (1 - p) * softplus(x))``."""
    prob = torch.sigmoid(logits)
    return prob.pow(gamma) * (prob + gamma * (1 - prob) * F.softplus(logits))


def _positive_correction(picked: Tensor, weight: Tensor, alpha: float, gamma: float) -> Tensor:
    """``(P,)`` loss of the positive elements minus the negative loss the dense part counted
    for them, times their row weights. The loss of target 1 at ``x`` is the loss of target 0
    at ``-x``."""
    pos_weight, neg_weight = _class_weights(alpha)
    return weight * (
        pos_weight * _negative_loss(-picked, gamma) - neg_weight * _negative_loss(picked, gamma)
    )


def _positive_correction_grad(picked: Tensor, weight: Tensor, alpha: float, gamma: float) -> Tensor:
    """``d/dx`` of :func:`_positive_correction`, ``(P,)``."""
    pos_weight, neg_weight = _class_weights(alpha)
    return -weight * (
        pos_weight * _negative_grad(-picked, gamma) + neg_weight * _negative_grad(picked, gamma)
    )


class _SparseFocalLossSum(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,  # attributes set here are read in backward
        logits: Tensor,
        rows: Tensor,
        cols: Tensor,
        row_weight: Tensor,
        alpha: float,
        gamma: float,
    ) -> Tensor:
        dense = logits.new_zeros(())
        for block, weight_block in zip(
            torch.split(logits, BLOCK_ROWS), torch.split(row_weight, BLOCK_ROWS), strict=True
        ):
            dense += _negative_loss(block, gamma).sum(dim=1) @ weight_block
        correction = _positive_correction(logits[rows, cols], row_weight[rows], alpha, gamma)
        ctx.save_for_backward(logits, rows, cols, row_weight)
        ctx.alpha, ctx.gamma = alpha, gamma
        return _class_weights(alpha)[1] * dense + correction.sum()

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        logits, rows, cols, row_weight = ctx.saved_tensors
        gamma = ctx.gamma
        grad = torch.empty_like(logits)
        scale = grad_output * _class_weights(ctx.alpha)[1] * row_weight
        for block, scale_block, grad_block in zip(
            torch.split(logits, BLOCK_ROWS), torch.split(scale, BLOCK_ROWS),
            torch.split(grad, BLOCK_ROWS), strict=True,
        ):
            torch.mul(_negative_grad(block, gamma), scale_block[:, None], out=grad_block)
        picked_grad = _positive_correction_grad(
            logits[rows, cols], row_weight[rows], ctx.alpha, gamma
        )
        grad.index_put_((rows, cols), picked_grad * grad_output, accumulate=True)
        return grad, None, None, None, None, None


def sparse_sigmoid_focal_loss_sum(
    logits: Tensor,
    labels: Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    row_weight: Tensor | None = None,
) -> Tensor:
    """Summed sigmoid focal loss of ``(N, C)`` logits against integer labels.

    :param logits: ``(N, C)`` float logits.
    :param labels: ``(N,)`` int64 labels in ``[0, C]``; ``C`` means background (all-zero target).
    :param alpha: weight of the positive class; negative disables the weighting.
    :param gamma: focusing parameter (>= 0).
    :param row_weight: ``(N,)`` weight of each row (e.g. 0 for ignored priors); default 1.
    :returns: a scalar, differentiable with respect to ``logits``.
    """
    rows = (labels < logits.shape[1]).nonzero().flatten()
    cols = labels[rows]
    if row_weight is None:
        row_weight = logits.new_ones(len(logits))
    loss: Tensor = _SparseFocalLossSum.apply(logits, rows, cols, row_weight.to(logits.dtype),
                                             alpha, gamma)
    return loss
