"""The panels of ``curves.png``: undefined metrics left out, the per-class APs in one panel,
a metric's IoU and size variants grouped, validation losses beside the training losses."""

from __future__ import annotations

from core.visualization.curves import curve_panels


def test_panels_group_metrics_and_leave_out_undefined_ones():
    steps = [(10, 0.5), (20, 0.6)]
    series = {"train/loss": [(1, 2.0)], "train/loss_cls": [(1, 1.0)], "train/lr": [(1, 0.1)],
              "val/loss_bbox": [(10, 0.9)], "val/coco/bbox_mAP": steps,
              "val/coco/bbox_mAP_50": steps, "val/coco/bbox_mAP_s": steps,
              "val/coco/bbox_mAP_l": [(10, -1.0), (20, -1.0)], "val/coco/bbox_AR_100": steps,
              "val/coco/bbox_AP_circle": steps, "val/coco/bbox_AP_star": [(10, -1.0), (20, 0.2)],
              "val/coco/bbox_AP_cross": [(10, -1.0)]}
    panels = dict(curve_panels(series))
    assert list(panels) == ["loss", "val loss", "lr", "coco/bbox_mAP",
                            "coco/bbox_mAP by object size", "coco/bbox_AR_100", "AP per class"]
    assert [label for label, _ in panels["coco/bbox_mAP"]] == ["bbox_mAP", "bbox_mAP_50"]
    assert [label for label, _ in panels["coco/bbox_mAP by object size"]] == ["bbox_mAP_s"]
    assert [label for label, _ in panels["AP per class"]] == ["circle", "star"]
    assert [label for label, _ in panels["val loss"]] == ["loss_bbox"]


def test_voc_metrics_keep_a_panel_each_and_classes_together():
    series = {"val/pascal_voc/mAP": [(1, 0.4)], "val/pascal_voc/AP_dog": [(1, 0.3)],
              "val/pascal_voc/AP_cat": [(1, 0.5)]}
    assert [(title, [label for label, _ in lines]) for title, lines in curve_panels(series)] \
        == [("pascal_voc/mAP", ["mAP"]), ("AP per class", ["dog", "cat"])]
