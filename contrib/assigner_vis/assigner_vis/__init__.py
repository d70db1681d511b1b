"""Positive-sample visualization: the priors an assigner makes positive, per level and index.

Works with any head that ``core.api.dense_head_of`` finds (``get_assignments(feats, samples)``
and a prior generator with strides, as every ``DenseHead`` has); the positives of an image are
the ``core.api.ImagePositives`` that ``core.api.collect_positives`` builds, the same model the
training-time ``PositiveSamplesHook`` draws. The model's weights can come from a checkpoint
(:mod:`assigner_vis.weights`).
"""

from assigner_vis.render import render_positives

__all__ = ["render_positives"]
