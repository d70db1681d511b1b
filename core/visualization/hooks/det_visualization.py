"""DetVisualizationHook: ground truth and predictions of a few val/test images."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.engine.hooks.base import PRIORITIES, Hook
from core.errors import ConfigError, require_at_least
from core.visualization.hooks.samples import load_original_image, samples_with_predictions

#: The local vis backend's image folder inside the run directory.
LOCAL_IMAGE_DIR = Path("vis_data") / "vis_image"

if TYPE_CHECKING:
    from core.engine.runner import Runner
    from core.structures import DetBatch


def _step(runner: Runner) -> int:
    """Epochs done in epoch-based runs, iterations done otherwise."""
    return runner.epoch if runner.by_epoch else runner.iter


class DetVisualizationHook(Hook):
    """Draw ground truth (left) and predictions (right) of the first ``num_images`` images.

    Validation images are drawn every ``interval`` epochs (epoch-based runs) or every
    ``interval``-th validation (iteration-based runs), named ``val/<image stem>`` at step =
    epoch (or iteration); test images once, named ``test/<image stem>`` at the same step.
    Images go to every vis backend (``vis_data/vis_image/`` for the local one). Images
    without a file (``img_path`` empty) are skipped with one warning.

    :param interval: see above; must be >= 1.
    :param num_images: images drawn per validation/test pass.
    :param score_thr: predictions below it are not drawn.
    :param draw_gt: draw the ground-truth panel.
    :param draw_pred: draw the prediction panel.
    :param draw_test: also draw during testing.
    """

    priority = PRIORITIES["LOW"]

    def __init__(
        self,
        interval: int = 1,
        num_images: int = 4,
        score_thr: float = 0.3,
        draw_gt: bool = True,
        draw_pred: bool = True,
        draw_test: bool = True,
    ) -> None:
        require_at_least("DetVisualizationHook.interval", interval, 1)
        require_at_least("DetVisualizationHook.num_images", num_images, 0)
        if not (draw_gt or draw_pred):
            raise ConfigError("DetVisualizationHook: draw_gt and draw_pred are both false")
        self.interval = interval
        self.num_images = num_images
        self.score_thr = score_thr
        self.draw_gt = draw_gt
        self.draw_pred = draw_pred
        self.draw_test = draw_test
        self._val_passes = 0
        self._active = False
        self._drawn = 0
        self._warned = False

    def pictures(self, runner: Runner) -> list[Path]:
        """Where the local vis backend put the drawings (for the run's closing summary)."""
        folder = runner.work_dir / LOCAL_IMAGE_DIR
        return [folder] if folder.is_dir() else []

    def before_val(self, runner: Runner) -> None:
        self._val_passes += 1
        done = runner.epoch if runner.by_epoch else self._val_passes
        self._active = runner.rank == 0 and done % self.interval == 0
        self._drawn = 0

    def after_val_iter(self, runner: Runner, batch_idx: int, batch: DetBatch,
                       outputs: list[Any]) -> None:
        self._draw(runner, batch, outputs, "val", _step(runner), runner.val_loader)

    def before_test(self, runner: Runner) -> None:
        self._active = runner.rank == 0 and self.draw_test
        self._drawn = 0

    def after_test_iter(self, runner: Runner, batch_idx: int, batch: DetBatch,
                        outputs: list[Any]) -> None:
        self._draw(runner, batch, outputs, "test", _step(runner), runner.test_loader)

    def _draw(self, runner: Runner, batch: DetBatch, outputs: list[Any], prefix: str,
              step: int, loader: Any) -> None:
        if not self._active or self._drawn >= self.num_images:
            return
        classes = loader.dataset.classes
        for sample in samples_with_predictions(batch, outputs):
            if self._drawn >= self.num_images:
                return
            if not sample.img_path:
                if not self._warned:
                    runner.logger.warning(f"{prefix} image {sample.img_id} has no img_path: "
                                          "DetVisualizationHook draws only images from files")
                    self._warned = True
                continue
            name = Path(sample.img_path).stem or str(sample.img_id)
            runner.visualizer.add_datasample(
                f"{prefix}/{name}", load_original_image(sample), sample, classes, step=step,
                draw_gt=self.draw_gt, draw_pred=self.draw_pred, score_thr=self.score_thr,
            )
            self._drawn += 1
