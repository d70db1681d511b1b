"""Pictures by default: a demo run with no picture settings leaves predictions, curves, PR
curves, a confusion matrix and a closing summary; each hook can be switched off."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from core.config import load_config
from core.engine.builders import build_hooks
from core.plugins import get_registries
from core.visualization.hooks import CurvesHook, DetVisualizationHook, ValPlotsHook
from core.visualization.hooks.curves import curve_panels
from core.visualization.hooks.run_summary import RunSummaryHook

from .conftest import DEMO


def test_tiny_demo_run_leaves_every_picture(tiny_demo):
    run = tiny_demo.run_dir
    for epoch in (1, 2):  # num_images = 4 val images at each validation
        assert len(list((run / "vis_data" / "vis_image").glob(f"val_0*_{epoch}.png"))) == 4
    drawn = sorted((run / "vis_data" / "vis_image").glob("val_0*_2.png"))
    with Image.open(drawn[0]) as image:
        assert image.width > 2 * image.height  # two panels side by side
    with Image.open(run / "curves.png") as image:
        assert image.width > 600 and image.height > 400
    for name in ("pr_curves.png", "confusion_matrix.png"):
        with Image.open(run / "val_plots" / name) as image:
            assert np.asarray(image.convert("L")).std() > 0
    summary = json.loads((run / "val_plots" / "summary.json").read_text())
    assert summary["classes"] == ["circle", "square", "triangle", "star", "cross"]
    assert len(summary["confusion_matrix"]) == 6
    assert "num_classes = 5" in (run / "config.toml").read_text()


def test_closing_summary_names_best_metric_checkpoint_and_pictures(tiny_demo):
    log = tiny_demo.log
    assert re.search(r"best coco/bbox_mAP = \d\.\d{4} at epoch [12]\n", log)
    best = [p for p in tiny_demo.run_dir.glob("best_*.pth")]
    assert len(best) == 1 and f"best checkpoint: {best[0]}" in log
    pictures = next(line for line in log.splitlines() if "pictures: " in line)
    for part in ("vis_data/vis_image", "curves.png", "val_plots"):
        assert str(tiny_demo.run_dir / part) in pictures


def test_pictures_reach_tensorboard(tiny_demo):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tiny_demo.run_dir / "vis_data" / "tensorboard"),
                              {"images": 0})
    events.Reload()
    tags = events.Tags()["images"]
    assert "val/pr_curves" in tags and "val/confusion_matrix" in tags
    predictions = [tag for tag in tags if tag.startswith("val/0")]
    assert len(predictions) == 4
    written = events.Images(predictions[0])
    assert [e.step for e in written] == [1, 2] and written[0].width > 2 * written[0].height


def test_curve_panels_hold_losses_lr_and_every_val_metric():
    series = {"train/loss": [(1, 2.0)], "train/loss_cls": [(1, 1.0)], "train/lr": [(1, 0.1)],
              "train/memory": [(1, 5.0)], "val/coco/bbox_mAP": [(1, 0.5)],
              "val/pascal_voc/mAP": [(1, 0.4)]}
    panels = curve_panels(series)
    assert [title for title, _ in panels] == ["loss", "lr", "coco/bbox_mAP", "pascal_voc/mAP"]
    assert [label for label, _ in panels[0][1]] == ["loss", "loss_cls"]


def test_summary_takes_the_first_best_and_follows_the_rule():
    hook = RunSummaryHook()
    hook._history = [(1, {"m": 0.2, "loss": 3.0}), (2, {"m": 0.5, "loss": 1.0}),
                     (3, {"m": 0.5, "loss": 2.0}), (4, {"m": float("nan"), "loss": 4.0})]
    assert hook._best(None, by_epoch=True) == ("m", 0.5, 2)
    assert RunSummaryHook(metric="loss")._best(None, by_epoch=True) is None  # no history yet
    hook.metric = "loss"
    assert hook._best(None, by_epoch=True) == ("loss", 1.0, 2)


@pytest.mark.parametrize("off", ["visualization", "curves", "val_plots", "summary"])
def test_each_default_picture_hook_switches_off(off):
    cfg = load_config(DEMO, [f"default_hooks.{off}=false"])
    kinds = {type(hook) for hook in build_hooks(cfg, get_registries())}
    expected = {"visualization": DetVisualizationHook, "curves": CurvesHook,
                "val_plots": ValPlotsHook, "summary": RunSummaryHook}
    assert set(expected.values()) - kinds == {expected[off]}


@pytest.mark.slow
def test_plain_demo_run_leaves_every_picture(tmp_path):
    """The demo exactly as ``tox -e demo`` runs it (the cost: bench/bench_pictures.py)."""
    subprocess.run([sys.executable, "-m", "core.run", str(DEMO), "--work-dir",
                    str(tmp_path / "work")], check=True, cwd=tmp_path, capture_output=True)
    (run,) = (tmp_path / "work").iterdir()
    assert (run / "curves.png").is_file()
    assert (run / "val_plots" / "pr_curves.png").is_file()
    assert (run / "val_plots" / "confusion_matrix.png").is_file()
    assert len(list((run / "vis_data" / "vis_image").glob("val_0*.png"))) >= 4
    assert "pictures: " in (run / "train.log").read_text()


def test_images_without_a_file_are_skipped_with_one_warning(caplog):
    import logging
    from types import SimpleNamespace
    from unittest import mock

    import torch

    from core.structures import DetBatch, DetSample, Instances

    hook = DetVisualizationHook(num_images=4)
    hook._active = True
    drawn = mock.Mock()
    runner = SimpleNamespace(logger=logging.getLogger("pictures-test"),
                             visualizer=SimpleNamespace(add_datasample=drawn))
    batch = DetBatch(torch.zeros(2, 3, 8, 8), [DetSample(img_id=1), DetSample(img_id=2)])
    loader = SimpleNamespace(dataset=SimpleNamespace(classes=("a",)))
    with caplog.at_level(logging.WARNING, logger="pictures-test"):
        for _ in range(2):
            hook._draw(runner, batch, [Instances.empty(True)] * 2, "val", 1, loader)
    drawn.assert_not_called()
    assert [r.message for r in caplog.records] == [
        "val image 1 has no img_path: DetVisualizationHook draws only images from files"]


def test_curves_are_redrawn_after_a_validation_at_most_every_min_interval(tmp_path,
                                                                           monkeypatch):
    import json
    import logging
    import types

    from core.visualization.hooks import curves

    (tmp_path / "vis_data").mkdir()
    (tmp_path / "vis_data/scalars.json").write_text(
        json.dumps({"train/loss": 1.0, "step": 1}) + "\n")
    drawn, clock = [], [0.0]
    monkeypatch.setattr(curves, "plot_panels", lambda panels, path, columns: drawn.append(
        clock[0]))
    monkeypatch.setattr(curves.time, "monotonic", lambda: clock[0])
    runner = types.SimpleNamespace(rank=0, work_dir=tmp_path, logger=logging.getLogger("t"))
    hook = CurvesHook(min_interval=30.0)
    for now in (5.0, 20.0, 40.0, 60.0, 71.0):  # validations
        clock[0] = now
        hook.after_val(runner, {})
    clock[0] = 75.0
    hook.after_train(runner)  # the end of training always draws
    assert drawn == [5.0, 40.0, 71.0, 75.0]
    every_time = CurvesHook(min_interval=0.0)
    drawn.clear()
    for now in (1.0, 2.0):
        clock[0] = now
        every_time.after_val(runner, {})
    assert drawn == [1.0, 2.0]
