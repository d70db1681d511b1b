"""The COCO tables against ``CocoMetric`` (the same pycocotools evaluation) and by hand."""

from __future__ import annotations

import pytest

from core.analysis.coco_tables import coco_tables
from core.evaluation.coco_metric import CocoMetric
from tests.analysis.records import random_records, record

CLASSES = ("a", "b", "c")


def test_overall_and_per_class_ap_match_coco_metric():
    results = random_records(3)
    metric = CocoMetric()
    metric.dataset_meta = {"classes": CLASSES}
    metric.results = results
    values = metric.evaluate()
    tables = coco_tables(results, CLASSES)
    assert tables.overall.ap == pytest.approx(values["coco/bbox_mAP"], abs=1e-6)
    assert tables.overall.ap50 == pytest.approx(values["coco/bbox_mAP_50"], abs=1e-6)
    assert tables.overall.ap_small == pytest.approx(values["coco/bbox_mAP_s"], abs=1e-6)
    for row in tables.classes:
        assert row.ap == pytest.approx(values[f"coco/bbox_AP_{row.name}"], abs=1e-6)
    assert sum(r.num_gt for r in tables.classes) == sum(len(r.gt_labels) for r in results)


def test_undefined_bins_and_missing_detections():
    tall = [0, 0, 10, 40]  # small, tall
    tables = coco_tables([record(0, [(tall, 0)], [(tall, 0, 0.9)]),
                          record(1, [(tall, 1)])], ("a", "b"))
    assert [r.ap for r in tables.classes] == [pytest.approx(1.0), 0.0]  # b: a box, no detection
    assert dict(tables.by_size)["large"] is None
    assert dict(tables.by_aspect)["wide (w/h > 3/2)"] is None
    assert dict(tables.by_aspect)["tall (w/h < 2/3)"] == pytest.approx(0.5)
    assert tables.recall[0] == pytest.approx(0.5)  # one of the two classes found
    empty = coco_tables([record(0, [(tall, 0)])], ("a",))
    assert empty.overall.ap == 0.0 and empty.classes[0].num_pred == 0
