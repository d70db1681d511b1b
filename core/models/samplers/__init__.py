"""Samplers: choose which assigned priors count in the loss."""

from core.models.samplers.pseudo_sampler import PseudoSampler
from core.models.samplers.random_sampler import RandomSampler
from core.models.samplers.sample_result import SampleResult

__all__ = ["PseudoSampler", "RandomSampler", "SampleResult"]
