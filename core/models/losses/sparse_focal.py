"""Summed sigmoid focal loss from integer labels, without a one-hot target.

With one-hot targets almost every element of the ``(N, C)`` logits is a negative. The summed
loss is therefore computed as "every element is a negative" plus a correction at the ``P``
positive elements (``P`` = number of foreground labels, a few hundred). The dense part needs
no target tensor and its gradient has a closed form, so the backward pass recomputes it from
the logits instead of keeping the dozen intermediates of the element-wise formula. The result
equals ``torchvision.ops.sigmoid_focal_loss(logits, one_hot, alpha, gamma).sum()``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx

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


def _positive_loss(logits: Tensor, gamma: float) -> Tensor:
    """Unweighted focal loss of target 1: ``(1 - p) ** gamma * -log(p)``, same shape."""
    return torch.sigmoid(-logits).pow(gamma) * F.softplus(-logits)


class _SparseFocalLossSum(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: FunctionCtx,
        logits: Tensor,
        rows: Tensor,
        cols: Tensor,
        alpha: float,
        gamma: float,
    ) -> Tensor:
        pos_weight, neg_weight = _class_weights(alpha)
        dense = logits.new_zeros(())
        for block in logits.split(BLOCK_ROWS):
            dense += _negative_loss(block, gamma).sum()
        picked = logits[rows, cols]
        correction = (
            pos_weight * _positive_loss(picked, gamma) - neg_weight * _negative_loss(picked, gamma)
        ).sum()
        ctx.save_for_backward(logits, rows, cols)
        ctx.alpha, ctx.gamma = alpha, gamma
        return neg_weight * dense + correction

    @staticmethod
    def backward(ctx: FunctionCtx, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        logits, rows, cols = ctx.saved_tensors
        pos_weight, neg_weight = _class_weights(ctx.alpha)
        gamma = ctx.gamma
        grad = torch.empty_like(logits)
        scale = grad_output * neg_weight
        for block, grad_block in zip(logits.split(BLOCK_ROWS), grad.split(BLOCK_ROWS), strict=True):
            torch.mul(_negative_grad(block, gamma), scale, out=grad_block)
        picked = logits[rows, cols].detach().requires_grad_()
        with torch.enable_grad():
            correction = pos_weight * _positive_loss(picked, gamma) - neg_weight * _negative_loss(
                picked, gamma
            )
            (picked_grad,) = torch.autograd.grad(correction.sum(), picked)
        grad.index_put_((rows, cols), picked_grad * grad_output, accumulate=True)
        return grad, None, None, None, None


def sparse_sigmoid_focal_loss_sum(
    logits: Tensor, labels: Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> Tensor:
    """Summed sigmoid focal loss of ``(N, C)`` logits against integer labels.

    :param logits: ``(N, C)`` float logits.
    :param labels: ``(N,)`` int64 labels in ``[0, C]``; ``C`` means background (all-zero target).
    :param alpha: weight of the positive class; negative disables the weighting.
    :param gamma: focusing parameter (>= 0).
    :returns: a scalar, differentiable with respect to ``logits``.
    """
    rows = (labels < logits.shape[1]).nonzero().flatten()
    cols = labels[rows]
    return _SparseFocalLossSum.apply(logits, rows, cols, alpha, gamma)
