"""What ``python -m core.run`` does for training and testing (also under torchrun)."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from core.engine import dist
from core.engine.checkpoint import atomic_write_bytes, remove_partial_writes
from core.engine.runner import Runner
from core.engine.workdir import (
    latest_checkpoint,
    new_run_dir,
    removed_if_left_empty,
    run_dir_lock,
    work_root,
)

#: ``--resume`` without a path: the latest checkpoint of this config's runs.
RESUME_LATEST = "latest"


def run_training(cfg: dict[str, Any], *, config_path: str, work_dir: str | None = None,
                 resume: str | None = None) -> None:
    """Train ``cfg`` in a new run directory, or continue a checkpoint.

    :param work_dir: root of the runs (default ``work_dirs/<config stem>``).
    :param resume: :data:`RESUME_LATEST` continues the newest checkpoint under the root, in
        its own run directory; a path continues that checkpoint in a new run directory.
    """
    dist.init_distributed()
    try:
        root = work_root(config_path, work_dir)
        resume_from: Path | None = None
        if resume == RESUME_LATEST:
            resume_from = Path(dist.broadcast_object(str(latest_checkpoint(root))
                                                     if dist.get_rank() == 0 else None))
            run_dir = resume_from.parent
            cleanup: AbstractContextManager = nullcontext()
        else:
            resume_from = Path(resume) if resume else None
            run_dir = new_run_dir(root)
            cleanup = removed_if_left_empty(run_dir)
        with cleanup, run_dir_lock(run_dir):
            if resume == RESUME_LATEST and dist.get_rank() == 0:
                remove_partial_writes(run_dir)  # only now that no other process writes there
            runner = Runner.from_config(cfg, work_dir=str(run_dir), config_path=config_path)
            runner.train(resume_from=resume_from)
    finally:
        dist.destroy_distributed()


def run_testing(cfg: dict[str, Any], *, config_path: str, checkpoint: str,
                work_dir: str | None = None, out: str | None = None,
                tta: bool = False) -> dict[str, float]:
    """Evaluate ``checkpoint`` on the test loader; optionally write metrics + predictions.

    ``out`` receives ``{"checkpoint", "metrics", "predictions": [{"img_id", "img_path",
    "boxes" (xyxy, original pixels), "scores", "labels"}]}`` as JSON; with a model that
    predicts masks each entry also has ``"segmentation"``: one COCO RLE
    (``{"size": [h, w], "counts": str}``) per box.
    """
    dist.init_distributed()
    try:
        run_dir = new_run_dir(work_root(config_path, work_dir))
        with removed_if_left_empty(run_dir):
            runner = Runner.from_config(cfg, work_dir=str(run_dir), config_path=config_path,
                                        mode="test", tta=tta)
            metrics, predictions = runner.test_with_predictions(checkpoint, tta=tta)
        if out and dist.get_rank() == 0:
            payload = {"checkpoint": str(checkpoint), "metrics": metrics,
                       "predictions": predictions}
            atomic_write_bytes(out, lambda f: f.write(json.dumps(payload, indent=1).encode()))
        return metrics
    finally:
        dist.destroy_distributed()
