"""The TIDE breakdown on images with one error each, AP values computed by hand (101-point
AP at IoU 0.5, in points)."""

from __future__ import annotations

import numpy as np
import pytest

from core.analysis.tide import ERROR_TYPES, tide_ap, tide_breakdown
from tests.analysis.records import record

CLASSES = ("a", "b")
BOX, FAR = [0, 0, 10, 10], [50, 50, 60, 60]
TALL = [0, 0, 10, 30]  # IoU 1/3 with BOX


def _only(report, kind, dap):
    """``kind`` costs ``dap`` points, every other main type nothing."""
    assert report.dap[kind] == pytest.approx(dap)
    assert {k: v for k, v in report.dap.items() if k in ERROR_TYPES and k != kind} == \
        dict.fromkeys((k for k in ERROR_TYPES if k != kind), 0.0)


def test_localisation():
    report = tide_breakdown([record(0, [(BOX, 0)], [(TALL, 0, 0.9)])], CLASSES)
    assert report.ap == 0.0
    _only(report, "loc", 100.0)
    assert report.counts == {**dict.fromkeys(ERROR_TYPES, 0), "loc": 1}  # the box is not missed
    assert report.images[0].pred_kind == ["loc"]


def test_classification():
    # class b: one false positive and no box (AP 0, counted as TIDE does); class a: AP 0
    report = tide_breakdown([record(0, [(BOX, 0)], [(BOX, 1, 0.9)])], CLASSES)
    assert report.ap == 0.0
    _only(report, "cls", 100.0)
    assert report.class_dap["a"]["cls"] == 100.0
    assert report.class_counts["b"]["cls"] == 1


def test_duplicate():
    preds = [(BOX, 0, 0.9), ([0, 0, 10, 11], 0, 0.8), (FAR, 0, 0.7)]
    report = tide_breakdown([record(0, [(BOX, 0), (FAR, 0)], preds)], CLASSES)
    # TP, FP, TP: precision 1 up to recall 0.5 (51 bins), then 2/3 (50 bins)
    base = (51 * 1.0 + 50 * 2 / 3) / 101 * 100
    assert report.ap == pytest.approx(base)
    _only(report, "dupe", 100.0 - base)
    assert report.images[0].pred_kind == ["tp", "dupe", "tp"]


def test_background():
    report = tide_breakdown([record(0, [(BOX, 0)], [(FAR, 0, 0.9), (BOX, 0, 0.5)])], CLASSES)
    assert report.ap == pytest.approx(50.0)  # FP then TP: precision 1/2 at every recall
    _only(report, "bkg", 50.0)


def test_both():
    # a class-b detection overlapping the class-a box by IoU 1/3: wrong class, poorly placed
    gt = [(BOX, 0), (FAR, 1)]
    preds = [(TALL, 1, 0.9), (BOX, 0, 0.8), (FAR, 1, 0.5)]
    report = tide_breakdown([record(0, gt, preds)], CLASSES)
    assert report.class_ap == {"a": 100.0, "b": pytest.approx(50.0)}
    _only(report, "both", 25.0)
    assert report.class_dap["b"]["both"] == pytest.approx(50.0)


def test_missed():
    report = tide_breakdown([record(0, [(BOX, 0), (FAR, 0)], [(BOX, 0, 0.9)])], CLASSES)
    base = 51 / 101 * 100  # recall stops at 0.5
    assert report.ap == pytest.approx(base)
    _only(report, "miss", 100.0 - base)
    assert report.dap["false_neg"] == pytest.approx(100.0 - base)
    assert report.images[0].gt_missed.tolist() == [False, True]


def test_crowd_region_ignores_detections_of_its_class_only():
    crowd = [([50, 50, 90, 90], 0)]
    inside = [55, 55, 70, 70]
    same = tide_breakdown([record(0, [(BOX, 0)], [(inside, 0, 0.9), (BOX, 0, 0.5)], crowd)],
                          CLASSES)
    assert same.ap == 100.0  # not a false positive
    assert same.counts == dict.fromkeys(ERROR_TYPES, 0)
    assert same.images[0].pred_kind == ["ignored", "tp"]
    other = tide_breakdown([record(0, [(BOX, 0)], [(inside, 1, 0.9), (BOX, 0, 0.5)], crowd)],
                           CLASSES)
    assert other.images[0].pred_kind == ["bkg", "tp"]


def test_ap_integrates_101_recall_points():
    assert tide_ap(np.array([0.9, 0.8]), np.array([True, False]), 2) == \
        pytest.approx(51 / 101 * 100)
    assert tide_ap(np.array([]), np.array([], bool), 3) == 0.0
    assert tide_ap(np.array([0.5]), np.array([False]), 0) == 0.0
