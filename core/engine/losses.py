"""Turning a detector's loss dict into the total loss and checking it is finite."""

from __future__ import annotations

import math

import torch

from core.errors import PlugdetError

LOSS_PREFIX = "loss"


class NonFiniteLossError(PlugdetError, FloatingPointError):
    """A loss became NaN or infinite; the message names the iteration and every term."""


def sum_losses(losses: dict[str, torch.Tensor | list[torch.Tensor]]
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(total, terms)``: ``terms`` maps each key to a 0-d tensor (lists are summed, e.g.
    per-level losses); ``total`` sums the terms whose key starts with ``"loss"``.

    :raises TypeError: when the dict has no loss term.
    """
    terms = {}
    for key, value in losses.items():
        terms[key] = sum(v.mean() for v in value) if isinstance(value, list) else value.mean()
    loss_terms = [value for key, value in terms.items() if key.startswith(LOSS_PREFIX)]
    if not loss_terms:
        raise TypeError(f"the detector's loss dict has no key starting with {LOSS_PREFIX!r}: "
                        f"{sorted(losses)}")
    total = torch.stack(loss_terms).sum()
    terms["loss"] = total
    return total, terms


def _where(iteration: int, epoch: int | None) -> str:
    return f"iteration {iteration}" + (f" (epoch {epoch + 1})" if epoch is not None else "")


def _last_good(last_checkpoint: str | None) -> str:
    return (f"last good checkpoint: {last_checkpoint}" if last_checkpoint
            else "no checkpoint written yet")


def check_finite(terms: dict[str, float], iteration: int, epoch: int | None,
                 last_checkpoint: str | None = None) -> None:
    """Raise :class:`NonFiniteLossError` naming ``iteration`` (1-based), the terms and
    ``last_checkpoint`` (the newest checkpoint, written before anything went wrong)."""
    if all(math.isfinite(value) for value in terms.values()):
        return
    bad = sorted(key for key, value in terms.items() if not math.isfinite(value))
    values = ", ".join(f"{key}={value:.4g}" for key, value in terms.items())
    raise NonFiniteLossError(
        f"non-finite loss at {_where(iteration, epoch)}: {', '.join(bad)} not finite "
        f"({values}); training stopped before the backward pass, "
        f"{_last_good(last_checkpoint)}")


def check_finite_grad_norm(grad_norm: float, iteration: int, epoch: int | None,
                           last_checkpoint: str | None = None) -> None:
    """Raise :class:`NonFiniteLossError` when the gradient norm is NaN or infinite."""
    if math.isfinite(grad_norm):
        return
    raise NonFiniteLossError(
        f"non-finite gradient norm at {_where(iteration, epoch)}: {grad_norm} (the loss "
        f"terms were finite); training stopped before the optimizer step, "
        f"{_last_good(last_checkpoint)}")
