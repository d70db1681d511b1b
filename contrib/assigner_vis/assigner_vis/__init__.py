"""Positive-sample visualization: the priors an assigner makes positive, per level and index.

Works with any head that implements ``get_assignments(feats, samples)`` returning an
object with ``priors`` (per level ``(N_l, 4)`` boxes or ``(N_l, 2)`` points), ``pos_inds``
and ``pos_gt_inds`` (per image, per level), as every ``DenseHead`` does; the model's weights
can come from a checkpoint (:mod:`assigner_vis.weights`).
"""

from assigner_vis.positives import ImagePositives, LevelPositives, collect_positives
from assigner_vis.render import render_positives

__all__ = ["ImagePositives", "LevelPositives", "collect_positives", "render_positives"]
