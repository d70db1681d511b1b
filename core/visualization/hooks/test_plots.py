"""TestPlotsHook: precision-recall curves and a confusion matrix of the test pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from core.engine import dist
from core.engine.hooks.base import PRIORITIES, Hook
from core.errors import ConfigError
from core.visualization.hooks.samples import samples_with_predictions
from core.visualization.plots import save_confusion_matrix, save_pr_curves

if TYPE_CHECKING:
    from core.engine.runner import Runner
    from core.structures import DetBatch, DetSample

PR_CURVES_FILE = "pr_curves.png"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
SUMMARY_FILE = "summary.json"


class TestPlotsHook(Hook):
    """Collect test predictions and, after the test pass, save ``pr_curves.png``,
    ``confusion_matrix.png`` and ``summary.json`` (classes, AP per class, confusion counts)
    under ``work_dir/out_dir``; send both images to the vis backends (``test/pr_curves``,
    ``test/confusion_matrix``). Samples are gathered from every rank.

    :param out_dir: folder inside the work dir.
    :param iou_thr: IoU at which a prediction matches ground truth.
    :param score_thr: confusion-matrix score threshold (the PR curves use every score).
    """

    __test__ = False  # not a pytest test class despite the name
    priority = PRIORITIES["LOW"]

    def __init__(self, out_dir: str = "test_plots", iou_thr: float = 0.5,
                 score_thr: float = 0.3) -> None:
        if not 0.0 < iou_thr <= 1.0:
            raise ConfigError(f"TestPlotsHook.iou_thr: expected 0 < iou_thr <= 1, got {iou_thr}")
        self.out_dir = out_dir
        self.iou_thr = iou_thr
        self.score_thr = score_thr
        self._samples: list[DetSample] = []

    def before_test(self, runner: Runner) -> None:
        self._samples = []

    def after_test_iter(self, runner: Runner, batch_idx: int, batch: DetBatch,
                        outputs: list[Any]) -> None:
        self._samples.extend(samples_with_predictions(batch, outputs))

    def after_test(self, runner: Runner, metrics: dict[str, float]) -> None:
        self._write(runner, runner.test_loader, "test", step=0)

    def pictures(self, runner: Runner) -> list[Path]:
        """What this hook wrote (for the run's closing summary)."""
        folder = runner.work_dir / self.out_dir
        return [folder] if folder.is_dir() else []

    def _write(self, runner: Runner, loader: Any, prefix: str, step: int) -> None:
        """Gather the collected samples of every rank; on rank 0 save the plots and send them
        to the vis backends as ``<prefix>/pr_curves`` and ``<prefix>/confusion_matrix``."""
        samples = [s for part in dist.all_gather_object(self._samples) for s in part]
        self._samples = []
        if runner.rank != 0 or loader is None or not samples:
            return
        classes = loader.dataset.classes
        out_dir = runner.work_dir / self.out_dir
        curves = save_pr_curves(samples, classes, out_dir / PR_CURVES_FILE, self.iou_thr)
        matrix = save_confusion_matrix(samples, classes, out_dir / CONFUSION_MATRIX_FILE,
                                       self.iou_thr, self.score_thr)
        summary = {
            "classes": list(classes),
            "iou_thr": self.iou_thr,
            "score_thr": self.score_thr,
            "ap": {c.class_name: None if c.num_gt == 0 else c.ap for c in curves},
            "confusion_matrix": matrix.tolist(),
        }
        (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
        runner.logger.info("%s plots in %s", prefix, out_dir)
        for file_name in (PR_CURVES_FILE, CONFUSION_MATRIX_FILE):
            with Image.open(out_dir / file_name) as image:
                rgb = np.asarray(image.convert("RGB"))
            runner.visualizer.add_image(f"{prefix}/{file_name.removesuffix('.png')}", rgb, step)


class ValPlotsHook(TestPlotsHook):
    """Like :class:`TestPlotsHook` for the validation set: keeps the predictions of the latest
    validation pass and, after training, saves the plots under ``work_dir/out_dir`` (vis
    backend names ``val/pr_curves``, ``val/confusion_matrix``).
    """

    def __init__(self, out_dir: str = "val_plots", iou_thr: float = 0.5,
                 score_thr: float = 0.3) -> None:
        super().__init__(out_dir, iou_thr, score_thr)

    def before_val(self, runner: Runner) -> None:
        self._samples = []

    def after_val_iter(self, runner: Runner, batch_idx: int, batch: DetBatch,
                       outputs: list[Any]) -> None:
        self._samples.extend(samples_with_predictions(batch, outputs))

    def after_train(self, runner: Runner) -> None:
        self._write(runner, runner.val_loader, "val", step=runner.iter)

    def before_test(self, runner: Runner) -> None:
        """Test passes are :class:`TestPlotsHook`'s job."""

    def after_test_iter(self, runner: Runner, batch_idx: int, batch: DetBatch,
                        outputs: list[Any]) -> None:
        """Test passes are :class:`TestPlotsHook`'s job."""

    def after_test(self, runner: Runner, metrics: dict[str, float]) -> None:
        """Test passes are :class:`TestPlotsHook`'s job."""
