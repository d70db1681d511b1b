"""Weights & Biases vis backend for plugdet (registered as ``WandbVisBackend``)."""

from plugdet_wandb.backend import WandbVisBackend
from plugdet_wandb.offline import OfflineRun, read_offline_run

__all__ = ["OfflineRun", "WandbVisBackend", "read_offline_run"]
