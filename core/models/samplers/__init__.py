"""Samplers: choose which assigned priors count in the loss (contract:
:class:`core.contracts.Sampler`)."""

from core.models.samplers.pseudo_sampler import PseudoSampler
from core.models.samplers.random_sampler import RandomSampler

__all__ = ["PseudoSampler", "RandomSampler"]
