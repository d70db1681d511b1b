"""Visualization runner hooks inside real training/test runs of the engine."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.engine.runner import Runner
from core.errors import ConfigError
from core.plugins import get_registries
from core.visualization.visualizer import PANEL_GAP_PX

sys.path.insert(0, str(Path(__file__).parent))

import vis_toy


@pytest.fixture
def toy(monkeypatch, tmp_path):
    vis_toy.install(monkeypatch)
    return tmp_path


def run_training(tmp_path: Path, hooks: list[dict], **overrides) -> Path:
    cfg = vis_toy.toy_config(str(tmp_path / "data"), hooks, **overrides)
    work_dir = tmp_path / "work"
    Runner.from_config(cfg, work_dir=str(work_dir)).train()
    return work_dir


def test_det_visualization_hook_draws_gt_and_predictions_each_epoch(toy):
    work_dir = run_training(toy, [{"type": "DetVisualizationHook", "num_images": 3}])
    image_dir = work_dir / "vis_data" / "vis_image"
    names = sorted(p.name for p in image_dir.glob("*.png"))
    expected_val = [f"val_img{i}_{epoch}.png" for epoch in (1, 2) for i in range(3)]
    assert sorted(n for n in names if n.startswith("val_")) == sorted(expected_val)
    assert sorted(n for n in names if n.startswith("test_")) == [f"test_img{i}_2.png" for i in
                                                                  range(3)]
    drawn = np.asarray(Image.open(image_dir / "val_img1_1.png"))
    size = vis_toy.ORIGINAL_SIZE
    assert drawn.shape == (size, 2 * size + PANEL_GAP_PX, 3)
    x1, y1, x2, y2 = (int(v) for v in vis_toy.square_of(1))
    gt_panel = drawn[:, :size].astype(int)
    pred_panel = drawn[:, size + PANEL_GAP_PX :].astype(int)
    odd_color = np.array([255, 127, 14])  # palette colour of class 1, drawn in original pixels
    assert np.abs(gt_panel[(y1 + y2) // 2, x1] - odd_color).max() < 60
    assert np.abs(pred_panel[(y1 + y2) // 2, x2] - odd_color).max() < 60
    # the 0.4 false positive is above the 0.3 default threshold: drawn on the right only
    assert np.abs(pred_panel[40, 30] - odd_color).max() < 60
    assert np.abs(gt_panel[40, 30] - odd_color).max() > 60


def test_det_visualization_hook_interval_and_bad_arguments(toy):
    work_dir = run_training(toy, [{"type": "DetVisualizationHook", "interval": 2,
                                   "num_images": 1, "draw_test": False}])
    names = sorted(p.name for p in (work_dir / "vis_data" / "vis_image").glob("*.png"))
    assert names == ["val_img0_2.png"]
    with pytest.raises(ConfigError, match="interval: expected >= 1"):
        get_registries().build("hook", {"type": "DetVisualizationHook", "interval": 0})


def test_param_histogram_hook_sends_non_zero_gradients(toy):
    backends = [{"type": "RecordingVisBackend"}, {"type": "TensorboardVisBackend"}]
    work_dir = run_training(toy, [{"type": "ParamHistogramHook", "interval": 2}],
                            train={"max_epochs": 2, "val_interval": 1}, vis_backends=backends)
    histograms = vis_toy.RecordingVisBackend.histograms
    grads = histograms["grads/backbone.0.weight"]
    assert [step for step, _ in grads] == [2, 4]  # 2 iterations per epoch, 2 epochs
    for _, values in grads:
        assert values.shape == (4, 3, 3, 3)
        assert values.abs().sum() > 0
    params = histograms["params/head.weight"]
    assert not (params[0][1] == params[1][1]).all()  # weights moved between snapshots
    assert set(histograms) == {f"{kind}/{name}" for kind in ("params", "grads") for name in
                               ("backbone.0.weight", "backbone.0.bias", "head.weight",
                                "head.bias")}

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(work_dir / "vis_data" / "tensorboard"), {"histograms": 0})
    events.Reload()
    written = events.Histograms("grads/backbone.0.weight")
    assert [e.step for e in written] == [2, 4]
    for event, (_, values) in zip(written, grads, strict=True):
        assert event.histogram_value.num == values.numel()
        assert event.histogram_value.sum_squares == pytest.approx(float((values**2).sum()),
                                                                  rel=1e-4)
        assert event.histogram_value.sum_squares > 0


def test_run_info_hook_writes_environment_and_watches_the_model(toy):
    work_dir = run_training(toy, [{"type": "RunInfoHook"}], train={"max_epochs": 1})
    text = (work_dir / "vis_data" / "env.txt").read_text()
    import torch

    assert f"torch: {torch.__version__}" in text
    assert "core.visualization.plugin" in text and "vistoy" in text
    assert vis_toy.RecordingVisBackend.texts["env"] == text
    assert len(vis_toy.RecordingVisBackend.watched) == 1


def test_test_plots_hook_saves_curves_matrix_and_summary(toy):
    work_dir = run_training(toy, [{"type": "TestPlotsHook"}], train={"max_epochs": 1,
                                                                     "test_at_end": True})
    plots = work_dir / "test_plots"
    for name in ("pr_curves.png", "confusion_matrix.png"):
        with Image.open(plots / name) as image:
            assert image.size[0] > 200 and image.size[1] > 200
        assert (work_dir / "vis_data" / "vis_image" / f"test_{name[:-4]}_0.png").exists()
    summary = json.loads((plots / "summary.json").read_text())
    assert summary["classes"] == ["even", "odd"]
    assert summary["ap"] == {"even": 1.0, "odd": 1.0}
    # 4 images: each true box matched on the diagonal, each 0.4 false box a background error
    assert summary["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [2, 2, 0]]
