"""WandbVisBackend: one wandb run per training run, stored under the work dir."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import wandb
from torch import nn

from core.api import BaseVisBackend, dump_config

#: The x axis of every logged value: plugdet's step (iteration or epoch as the caller says).
STEP_KEY = "global_step"
CODE_SUFFIXES = (".py", ".toml")


class WandbVisBackend(BaseVisBackend):
    """Log to Weights & Biases; ``mode = "offline"`` needs no network or account.

    The run starts on first use (``experiment`` returns it) in ``save_dir/vis_data``
    (``WANDB_DIR`` is pointed there; ``WANDB_SILENT`` is on unless set otherwise).

    - config: ``run.config`` gets the merged config (hyper-parameters included) and the TOML
      file is logged as an artifact of type ``config``;
    - code: with ``log_code_dir``, its ``.py``/``.toml`` files are logged as a code artifact;
    - scalars, images (``wandb.Image``), histograms (``wandb.Histogram``) are logged against
      ``global_step``; texts go to the run summary;
    - ``watch``: with ``watch_log`` set, ``run.watch`` follows the model's gradients/parameters.

    :param save_dir: the run's work dir.
    :param project: wandb project.
    :param run_name: display name of the run (wandb picks one when empty).
    :param entity: wandb team or user ("" for the default).
    :param tags: run tags.
    :param mode: ``online``, ``offline`` (sync later with ``wandb sync``) or ``disabled``;
        None leaves it to wandb (``WANDB_MODE``, else online).
    :param log_code_dir: directory whose source is logged as an artifact ("" for none).
    :param watch_log: ``gradients``, ``parameters``, ``all`` or None (no watching).
    :param watch_log_freq: watch every this many backward passes.
    """

    def __init__(
        self,
        save_dir: str = "",
        project: str = "plugdet",
        run_name: str = "",
        entity: str = "",
        tags: list[str] | None = None,
        mode: Literal["online", "offline", "disabled"] | None = None,
        log_code_dir: str = "",
        watch_log: Literal["gradients", "parameters", "all"] | None = None,
        watch_log_freq: int = 100,
    ) -> None:
        super().__init__(save_dir)
        self.run_dir = Path(save_dir) / "vis_data"
        self.project = project
        self.run_name = run_name
        self.entity = entity
        self.tags = list(tags or [])
        self.mode = mode
        self.log_code_dir = log_code_dir
        self.watch_log = watch_log
        self.watch_log_freq = watch_log_freq
        self._run: Any = None

    @property
    def experiment(self) -> Any:
        """The ``wandb`` run (started on first access)."""
        if self._run is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            os.environ["WANDB_DIR"] = str(self.run_dir)
            os.environ.setdefault("WANDB_DATA_DIR", str(self.run_dir / "wandb_data"))
            os.environ.setdefault("WANDB_SILENT", "true")
            self._run = wandb.init(
                project=self.project,
                name=self.run_name or None,
                entity=self.entity or None,
                tags=self.tags,
                mode=self.mode,
                dir=str(self.run_dir),
                settings=wandb.Settings(console="off", silent=True),
            )
            self._run.define_metric(STEP_KEY)
            self._run.define_metric("*", step_metric=STEP_KEY)
            if self.log_code_dir:
                self._run.log_code(
                    root=self.log_code_dir, include_fn=lambda path: path.endswith(CODE_SUFFIXES)
                )
        return self._run

    def add_config(self, config: dict[str, Any]) -> None:
        run = self.experiment
        run.config.update(config, allow_val_change=True)
        config_file = self.run_dir / "config.toml"
        config_file.write_text(dump_config(config), encoding="utf-8")
        artifact = wandb.Artifact(name="config", type="config")
        artifact.add_file(str(config_file))
        run.log_artifact(artifact)

    def _log(self, values: dict[str, Any], step: int) -> None:
        self.experiment.log({**values, STEP_KEY: int(step)})

    def add_image(self, name: str, image: np.ndarray, step: int = 0) -> None:
        self._log({name: wandb.Image(image)}, step)

    def add_scalars(self, scalars: dict[str, float], step: int = 0) -> None:
        self._log(dict(scalars), step)

    def add_histogram(self, name: str, values: torch.Tensor | np.ndarray, step: int = 0) -> None:
        array = values.float().numpy() if isinstance(values, torch.Tensor) else values
        self._log({name: wandb.Histogram(np.asarray(array).reshape(-1))}, step)

    def add_text(self, name: str, text: str, step: int = 0) -> None:
        self.experiment.summary[name] = text

    def watch(self, model: nn.Module) -> None:
        if self.watch_log is not None:
            self.experiment.watch(model, log=self.watch_log, log_freq=self.watch_log_freq)

    def close(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None
