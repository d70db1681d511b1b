"""TensorBoard vis backend for plugdet (registered as ``TensorboardVisBackend``)."""

from plugdet_tensorboard.backend import TensorboardVisBackend

__all__ = ["TensorboardVisBackend"]
