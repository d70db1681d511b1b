"""The TIDE breakdown against the ``tidecv`` package on the same detections and ground truth
(run by ``tox -e tide``, the one environment that installs tidecv)."""

from __future__ import annotations

import numpy as np
import pytest

from core.analysis.tide import ERROR_TYPES, IGNORED, tide_breakdown
from tests.analysis.records import random_records

tidecv = pytest.importorskip("tidecv", reason="tidecv is installed only in the tox env 'tide'")

SHORT_NAMES = {"cls": "Cls", "loc": "Loc", "both": "Both", "dupe": "Dupe", "bkg": "Bkg",
               "miss": "Miss"}
SPECIAL_NAMES = {"false_pos": "FalsePos", "false_neg": "FalseNeg"}
TOLERANCE = 0.1  # AP points


def _xywh(box: np.ndarray) -> list[float]:
    return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]


def _tidecv_run(results):
    gt, preds = tidecv.Data("gt"), tidecv.Data("preds")
    for r in results:
        gt.add_image(r.img_id, str(r.img_id))
        for box, label in zip(r.gt_boxes, r.gt_labels, strict=True):
            gt.add_ground_truth(r.img_id, int(label), _xywh(box))
        for box, label in zip(r.ignore_boxes, r.ignore_labels, strict=True):
            gt.add_ignore_region(r.img_id, int(label), _xywh(box))
        for box, label, score in zip(r.pred_boxes, r.pred_labels, r.pred_scores, strict=True):
            preds.add_detection(r.img_id, int(label), float(score), _xywh(box))
    tide = tidecv.TIDE()
    run = tide.evaluate(gt, preds, mode=tidecv.TIDE.BOX)
    return tide, run


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_breakdown_matches_tidecv(seed):
    results = random_records(seed)
    ours = tide_breakdown(results, ("a", "b", "c"))
    tide, run = _tidecv_run(results)
    main = tide.get_main_errors()["preds"]
    special = tide.get_special_errors()["preds"]
    assert ours.ap == pytest.approx(run.ap, abs=TOLERANCE)
    for kind, name in SHORT_NAMES.items():
        assert ours.dap[kind] == pytest.approx(main[name], abs=TOLERANCE), kind
    for kind, name in SPECIAL_NAMES.items():
        assert ours.dap[kind] == pytest.approx(special[name], abs=TOLERANCE), kind
    assert sum(ours.dap[k] for k in ERROR_TYPES) > 1.0  # the data has errors to fix
    counts = run.count_errors()
    ignored = sum(kind == IGNORED for image in ours.images for kind in image.pred_kind)
    assert ignored > 0
    for error_type, count in counts.items():
        kind = next(k for k, n in SHORT_NAMES.items() if n == error_type.short_name)
        # tidecv also calls the detections inside crowd regions (here: no box near) background
        assert ours.counts[kind] + (ignored if kind == "bkg" else 0) == count, kind
