"""The Runner: trains, validates and tests a detector from a config.

``Runner.from_config(cfg, work_dir=..., config_path=...)`` is the one place that reads the
config; the constructor takes built objects. Training calls the hooks (see
:mod:`core.engine.hooks.base`) at every event in ascending priority.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

import core
from core.config import dump_config
from core.engine import dist
from core.engine.builders import build_optimization
from core.engine.checkpoint import (
    load_checkpoint,
    load_model_state,
    model_state_from,
    save_checkpoint,
    write_last_checkpoint,
)
from core.engine.cpu_tuning import apply_cpu_settings
from core.engine.hooks.base import Hook
from core.engine.log_setup import (
    append_failure,
    buffered_component_logs,
    close_logger,
    replay,
    setup_logger,
)
from core.engine.losses import (
    check_finite,
    check_finite_grad_norm,
    sum_losses,
)
from core.engine.message_hub import MessageHub
from core.engine.model_wrapper import unwrap_detector, wrap_for_training
from core.engine.optim import OptimWrapper
from core.engine.progress import ProgressBar
from core.engine.randomness import capture_rng_state, isolated_rng, restore_rng_state
from core.engine.run_config import RunSettings
from core.engine.schedulers import ParamSchedulers
from core.errors import CheckpointError, ConfigError, RunFileError, describe_os_error, writing
from core.evaluation.records import encode_masks
from core.plugins import get_plugin_manager
from core.structures import DetBatch, Instances
from core.visualization import Visualizer
from core.weights.checkpoint import read_checkpoint
from core.weights.loading import load_pretrained_detector, loads_exactly


def _set_loader_position(loader: DataLoader, epoch: int, start_iter: int) -> None:
    """Tell the loader's sampler the epoch (shuffle order) and the first batch to yield."""
    for sampler in (loader.batch_sampler, loader.sampler):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
    if start_iter:
        target = next((s for s in (loader.batch_sampler, loader.sampler)
                       if hasattr(s, "set_start_iter")), None)
        if target is None:
            raise RuntimeError("cannot resume mid-epoch: the train loader's sampler has no "
                               "set_start_iter(); build it with core.data.loader")
        target.set_start_iter(start_iter)


class Runner:
    """Owns the model, data, optimizer, schedulers, hooks, logger and MessageHub of one run.

    Hooks read: ``model`` (the detector, unwrapped), ``optimizer``, ``cfg``, ``work_dir``,
    ``epoch`` (completed epochs), ``iter`` (completed iterations), ``iter_in_epoch``,
    ``iters_per_epoch``, ``max_epochs``, ``max_iters``, ``by_epoch``, ``train_loader``,
    ``val_loader``, ``test_loader``, ``visualizer``, ``message_hub``, ``rank``,
    ``world_size``, ``logger``, ``device``; they may set ``stop_training``.

    :param settings: run-wide options (see :class:`~core.engine.run_config.RunSettings`).
    :param model: the detector (``loss(batch)``, ``predict(batch)``).
    :param work_dir: this run's directory (created by global rank 0, which writes the logs,
        checkpoints and pictures into it).
    :param hooks: runner hooks; sorted by ``priority`` (stable).
    :param train_loader: yields ``DetBatch``; ``None`` for test-only runners.
    :param val_loader, val_evaluators: validation data and metrics.
    :param test_loader, test_evaluators: test data and metrics.
    :param cfg: the merged config (saved as ``config.toml`` and sent to the vis backends).
    :param early_records: log records of building the parts (dataset skips...), written to
        the run's log once it exists.
    """

    def __init__(
        self,
        *,
        settings: RunSettings,
        model: nn.Module,
        work_dir: str | Path,
        hooks: list[Hook],
        train_loader: DataLoader | None = None,
        val_loader: DataLoader | None = None,
        val_evaluators: list[Any] | None = None,
        test_loader: DataLoader | None = None,
        test_evaluators: list[Any] | None = None,
        cfg: dict[str, Any] | None = None,
        log_name: str = "train",
        early_records: list[logging.LogRecord] | None = None,
    ) -> None:
        self.settings = settings
        #: what the first log line says about :func:`~core.engine.cpu_tuning.apply_cpu_settings`
        self.cpu_settings = apply_cpu_settings(settings.flush_denormal)
        self.cfg = cfg or {}
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.device = settings.device
        self.work_dir = Path(work_dir)
        if self.rank == 0:  # the only writer: other nodes need no such folder
            self.work_dir.mkdir(parents=True, exist_ok=True)
        name = _run_name(self.work_dir, log_name)
        #: the run's log file (written on rank 0)
        self.log_file = self.work_dir / f"{log_name}.log"
        self.logger: logging.Logger
        self.progress_bar: ProgressBar | None
        self.logger, self.progress_bar = setup_logger(name, self.log_file, self.rank)
        replay(self.logger, early_records or [])
        self.message_hub = MessageHub.get_instance(name)
        self.visualizer = Visualizer.get_instance(
            name, vis_backends=settings.vis_backends if self.rank == 0 else [],
            save_dir=str(self.work_dir))
        if self.rank == 0 and self.cfg:
            with writing(self.work_dir / "config.toml"):
                (self.work_dir / "config.toml").write_text(dump_config(self.cfg),
                                                           encoding="utf-8")
            self.visualizer.add_config(self.cfg)

        self.model = model.to(self.device)
        if settings.load_from:
            self.load_weights(settings.load_from,
                              _dataset_classes(train_loader, val_loader, test_loader))
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.val_evaluators = val_evaluators or []
        self.test_loader = test_loader
        self.test_evaluators = test_evaluators or []
        self.hooks = sorted(hooks, key=lambda hook: hook.priority)

        self.by_epoch = settings.by_epoch
        self.val_interval = settings.val_interval
        self.epoch = 0
        self.iter = 0
        self.iter_in_epoch = 0
        self.stop_training = False
        self.iters_per_epoch = len(train_loader) if train_loader is not None else 0
        self.max_epochs = settings.max_epochs
        self.max_iters = settings.max_iters or self.max_epochs * self.iters_per_epoch
        self._pending_rng: dict[str, Any] | None = None
        #: the newest checkpoint written or resumed (named when training stops on NaN)
        self.last_checkpoint: Path | None = None

        self.train_step: nn.Module | None = None
        self.optim_wrapper: OptimWrapper | None = None
        self.param_schedulers: ParamSchedulers
        if train_loader is not None:
            self.train_step = wrap_for_training(
                self.model, self.device, dist.is_distributed(), settings.sync_bn,
                settings.find_unused_parameters)
            self.model = unwrap_detector(self.train_step)
            scaler = torch.amp.GradScaler("cuda", enabled=settings.amp_dtype == torch.float16)
            self.optim_wrapper, self.param_schedulers = build_optimization(
                self.model, settings, self.max_iters, scaler)

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The optimizer (training runners only)."""
        if self.optim_wrapper is None:
            raise RuntimeError("this runner was built without a train_dataloader")
        return self.optim_wrapper.optimizer

    # ---- construction from a config -------------------------------------------------------

    @classmethod
    def from_config(cls, cfg: dict[str, Any], *, work_dir: str | None,
                    config_path: str | None = None, mode: str = "train", tta: bool = False,
                    ) -> Runner:
        """Build everything ``cfg`` describes (``mode`` ``"train"`` or ``"test"``).

        :param work_dir: the run directory; ``None`` creates a new one under
            ``work_dirs/<config stem>`` (see :mod:`core.engine.workdir`).
        :param config_path: the config file (for messages and the default work dir).
        :param tta: test with test-time augmentation (the ``[tta]`` table's views).
        """
        from core.engine.builders import build_runner_parts
        from core.engine.class_count import resolve_num_classes

        cfg = resolve_num_classes(cfg, counts_from_data=True)  # the datasets give the rest
        try:
            with buffered_component_logs() as records:
                parts = build_runner_parts(cfg, mode=mode, config_path=config_path, tta=tta)
            if work_dir is None:
                from core.engine.workdir import new_run_dir, work_root

                work_dir = str(new_run_dir(work_root(config_path, None)))
            return cls(work_dir=work_dir, log_name=mode, early_records=records, **parts)
        except BaseException as exc:
            if work_dir is not None and dist.get_rank() == 0:
                close_logger(logging.getLogger(f"plugdet.{_run_name(Path(work_dir), mode)}"))
                append_failure(Path(work_dir) / f"{mode}.log", exc)
            raise

    # ---- events -----------------------------------------------------------------------

    def call_hook(self, event: str, *args: Any) -> None:
        """Call ``event`` on every hook in priority order."""
        for hook in self.hooks:
            getattr(hook, event)(self, *args)

    # ---- training ---------------------------------------------------------------------

    def train(self, resume_from: str | Path | None = None) -> nn.Module:
        """Train to ``max_epochs``/``max_iters`` (continuing ``resume_from`` if given).

        :returns: the trained detector.
        """
        if self.train_loader is None or self.optim_wrapper is None:
            raise RuntimeError("this runner was built without a train_dataloader")
        try:
            self.call_hook("before_run")
            if resume_from is not None:
                self.resume(resume_from)
            self._log_start()
            self.call_hook("before_train")
            if self.by_epoch:
                self._train_by_epoch()
            else:
                self._train_by_iter()
            self.call_hook("after_train")
            if self.settings.test_at_end and self.test_loader is not None:
                self.test_current(tta=self.settings.test_tta)
        except BaseException as exc:
            failure = self._with_last_checkpoint(exc)
            if self.rank == 0:
                append_failure(self.log_file, failure, self.logger)
            if failure is exc:
                raise
            raise failure from exc
        finally:
            self.call_hook("after_run")
            self.close()
        return self.model

    def _with_last_checkpoint(self, exc: BaseException) -> BaseException:
        """A failed write of a run's file (:class:`RunFileError`, or any OSError) as a
        :class:`RunFileError` that also names the last good checkpoint; ``exc`` otherwise."""
        if isinstance(exc, OSError):
            message = describe_os_error(exc)
        elif isinstance(exc, RunFileError):
            message = str(exc)
        else:
            return exc
        last = (f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint
                else "no checkpoint was written yet")
        return RunFileError(f"{message}; {last}")

    def _log_start(self) -> None:
        unit = (f"{self.max_epochs} epochs x {self.iters_per_epoch} iterations" if self.by_epoch
                else f"{self.max_iters} iterations")
        self.logger.info(
            f"plugdet {core.__version__}, torch {torch.__version__}, device {self.device}, "
            f"precision {_precision(self.settings.amp_dtype)}, memory format "
            f"{'channels-last' if _channels_last(self.model) else 'contiguous (NCHW)'}, "
            f"{self.cpu_settings}, "
            f"world size {self.world_size}; work dir {self.work_dir}; training {unit} from "
            f"epoch {self.epoch + 1} iteration {self.iter + 1}")
        manager = get_plugin_manager()
        for item in manager.incompatible:
            self.logger.warning(f"plugin not loaded, written for another plugin API: "
                                f"{item.describe()}")
        for failure in manager.failures:
            self.logger.warning(f"plugin not loaded: {failure.distribution} {failure.version} "
                                f"[{failure.name}]: {failure.error}")

    def _train_by_epoch(self) -> None:
        while self.epoch < self.max_epochs and not self.stop_training:
            self.call_hook("before_train_epoch")
            self._run_epoch_iters(stop_at=None)
            if self.stop_training and self.iter_in_epoch < self.iters_per_epoch:
                break
            self.epoch += 1
            self.iter_in_epoch = 0
            self.call_hook("after_train_epoch")

    def _train_by_iter(self) -> None:
        while self.iter < self.max_iters and not self.stop_training:
            self._run_epoch_iters(stop_at=self.max_iters)
            if self.iter_in_epoch == self.iters_per_epoch:
                self.epoch += 1
                self.iter_in_epoch = 0

    def _epoch_batches(self) -> Iterator[DetBatch]:
        """The rest of the current epoch's batches, from ``iter_in_epoch`` on.

        Resumed generator states are restored here: mid-epoch ones after the loader's iterator
        exists (creating it draws a seed), epoch-boundary ones before.
        """
        assert self.train_loader is not None
        _set_loader_position(self.train_loader, self.epoch, self.iter_in_epoch)
        if self._pending_rng is not None and self.iter_in_epoch == 0:
            restore_rng_state(self._pending_rng)
            self._pending_rng = None
        batches = iter(self.train_loader)
        if self._pending_rng is not None:
            restore_rng_state(self._pending_rng)
            self._pending_rng = None
        for batch in batches:
            _note_replaced(self.train_loader, batch)
            yield batch

    def _run_epoch_iters(self, stop_at: int | None) -> None:
        self.model.train()
        for batch_idx, batch in enumerate(self._epoch_batches(), start=self.iter_in_epoch):
            self._train_iter(batch_idx, batch)
            if self.stop_training or (stop_at is not None and self.iter >= stop_at):
                return

    def _autocast(self) -> Any:
        if self.settings.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.settings.amp_dtype)

    def _train_iter(self, batch_idx: int, batch: DetBatch) -> None:
        assert self.optim_wrapper is not None and self.train_step is not None
        self.call_hook("before_train_iter", batch_idx, batch)
        self.message_hub.update_scalar("train/lr", self.optim_wrapper.get_lrs()[0])
        stepping = self.optim_wrapper.should_step(self.iter, self.max_iters)
        with self.optim_wrapper.no_sync(self.train_step, stepping):
            with self._autocast():
                total, terms = sum_losses(self.train_step(batch.to(self.device)))
            values = dist.all_reduce_mean(torch.stack([t.detach().float() for t in terms.values()]))
            outputs = dict(zip(terms, values.tolist(), strict=True))
            epoch = self.epoch if self.by_epoch else None
            last = str(self.last_checkpoint) if self.last_checkpoint else None
            check_finite(outputs, self.iter + 1, epoch, last)
            self.optim_wrapper.backward(total)
        if stepping:
            grad_norm = self.optim_wrapper.step(
                lambda: self.call_hook("after_backward", batch_idx),
                lambda norm: check_finite_grad_norm(norm, self.iter + 1, epoch, last))
            if grad_norm is not None:
                self.message_hub.update_scalar("train/grad_norm", grad_norm)
        else:
            self.call_hook("after_backward", batch_idx)
        for key, value in outputs.items():
            self.message_hub.update_scalar(f"train/{key}", value)
        self.iter += 1
        self.iter_in_epoch = batch_idx + 1
        self.message_hub.update_info("iter", self.iter)
        self.message_hub.update_info("epoch", self.epoch)
        self.call_hook("after_train_iter", batch_idx, batch, outputs)

    # ---- evaluation -------------------------------------------------------------------

    @torch.no_grad()
    def _predict(self, batch: DetBatch, tta: bool) -> tuple[list[Any], list[Instances]]:
        """Samples (one per image) and their predictions in original image coordinates."""
        with self._autocast():
            preds = [pred.to("cpu") for pred in self.model.predict(batch.to(self.device))]
        if not tta:
            return batch.samples, preds
        from core.data.transforms.tta import merge_tta_predictions

        return merge_tta_predictions(batch.samples, preds, iou_thr=self.settings.tta["iou_thr"],
                                     max_per_img=self.settings.tta["max_per_img"])

    @torch.no_grad()
    def _predict_sliced(self, batch: DetBatch, loader: DataLoader,
                        tta: bool) -> tuple[list[Any], list[Instances]]:
        """Samples and predictions of the ``[slice]`` path: each image read again, cut into
        tiles that go through the loader's test pipeline, their detections merged."""
        from core.data.slicing import load_original, predict_sliced, test_prepare

        settings, pipeline = self.settings.slice, getattr(loader.dataset, "pipeline", None)
        assert settings is not None
        if tta or pipeline is None:
            raise ConfigError("[slice]: needs a dataset with a test pipeline and no test-time "
                              "augmentation")

        def predict(tiles: DetBatch) -> list[Instances]:
            with self._autocast():
                return [p.to("cpu") for p in self.model.predict(tiles.to(self.device))]

        prepare = test_prepare(pipeline)
        preds = [predict_sliced(load_original(s), settings, predict, prepare, loader.collate_fn,
                                int(s.img_id), s.img_path) for s in batch.samples]
        return batch.samples, preds

    def _evaluate(self, loader: DataLoader, evaluators: list[Any], stage: str,
                  tta: bool = False, keep_predictions: bool = False,
                  ) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Run ``loader`` through ``predict`` and every evaluator; generator states untouched."""
        predictions: list[dict[str, Any]] = []
        dist.sync_buffers(self.model)
        with isolated_rng():
            was_training = self.model.training
            self.model.eval()
            for evaluator in evaluators:
                evaluator.reset()
            for batch_idx, batch in enumerate(loader):
                _note_replaced(loader, batch)
                samples, preds = (self._predict(batch, tta) if self.settings.slice is None
                                  else self._predict_sliced(batch, loader, tta))
                for sample, pred in zip(samples, preds, strict=True):
                    sample.pred = pred
                for evaluator in evaluators:
                    evaluator.process(samples)
                if keep_predictions:
                    predictions.extend(_prediction_record(s) for s in samples)
                self.call_hook(f"after_{stage}_iter", batch_idx, batch, preds)
            metrics: dict[str, float] = {}
            for evaluator in evaluators:
                metrics.update(evaluator.evaluate())
            self.model.train(was_training)
        return metrics, predictions

    def val(self) -> dict[str, float]:
        """Evaluate on the validation loader; returns (and logs) the metrics."""
        if self.val_loader is None:
            return {}
        self.call_hook("before_val")
        metrics, _ = self._evaluate(self.val_loader, self.val_evaluators, "val")
        for key, value in metrics.items():
            self.message_hub.update_scalar(f"val/{key}", value)
        self.call_hook("after_val", metrics)
        return metrics

    def test_current(self, tta: bool = False) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Evaluate the current weights on the test loader.

        :returns: the metrics and, per test image, ``{"img_id", "img_path", "boxes" (xyxy,
            original image pixels), "scores", "labels"}`` (and ``"segmentation"``, COCO RLEs,
            when the model predicts masks) gathered from every rank.
        """
        if self.test_loader is None:
            raise RuntimeError("no test_dataloader (or val_dataloader) in the config")
        self.call_hook("before_test")
        start = time.perf_counter()
        metrics, predictions = self._evaluate(self.test_loader, self.test_evaluators, "test",
                                              tta=tta, keep_predictions=True)
        seconds = time.perf_counter() - start
        # a distributed sampler repeats a few images to even out the ranks: keep one of each
        gathered = {p["img_id"]: p for part in dist.all_gather_object(predictions) for p in part}
        self.logger.info(
            f"test: {len(predictions)} images in {seconds:.2f} s, "
            f"{1000 * seconds / max(len(predictions), 1):.1f} ms per image (loading, "
            + ("sliced " if self.settings.slice is not None else "")
            + "inference and evaluation)")
        self.call_hook("after_test", metrics)
        return metrics, [gathered[img_id] for img_id in sorted(gathered)]

    def test(self, checkpoint: str | Path, tta: bool = False) -> dict[str, float]:
        """Load ``checkpoint``'s weights and evaluate on the test loader; returns the metrics."""
        return self.test_with_predictions(checkpoint, tta)[0]

    def test_with_predictions(self, checkpoint: str | Path, tta: bool = False,
                              ) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Like :meth:`test`, also returning the per-image predictions."""
        try:
            self.call_hook("before_run")
            state = load_checkpoint(checkpoint)
            load_model_state(self.model, model_state_from(state, str(checkpoint)), str(checkpoint))
            self.call_hook("after_load_checkpoint", state)
            self.logger.info(f"testing {checkpoint} on {self.device}"
                             + (" with flip test-time augmentation" if tta else ""))
            return self.test_current(tta)
        except BaseException as exc:
            if self.rank == 0:
                append_failure(self.log_file, exc, self.logger)
            raise
        finally:
            self.call_hook("after_run")
            self.close()

    # ---- checkpoints ------------------------------------------------------------------

    def load_weights(self, path: str | Path,
                     dataset_classes: tuple[str, ...] | None = None) -> None:
        """Load only the model weights of ``path`` (``load_from``): a plugdet checkpoint key
        for key (keys must match exactly); ``torchvision://NAME`` or another framework's file
        through its weight converter, fitted to ``dataset_classes`` (class rows by name, with
        ``load_from_class_map``; see ``docs/pretrained.md``)."""
        checkpoint = read_checkpoint(path)
        if loads_exactly(checkpoint, dataset_classes):
            load_model_state(self.model, checkpoint.state, str(path))
            self.logger.info(f"loaded weights from {path}")
            return
        load_pretrained_detector(self.model, checkpoint, dataset_classes,
                                 self.settings.load_from_class_map, self.logger)

    def save_checkpoint(self, filename: str, update_last: bool = True) -> None:
        """Write ``work_dir/filename`` (rank 0) with everything needed to resume exactly.

        Must be called on every rank: the generator states of all ranks are gathered.
        """
        assert self.optim_wrapper is not None
        checkpoint: dict[str, Any] = {
            "meta": {"epoch": self.epoch, "iter": self.iter, "iter_in_epoch": self.iter_in_epoch,
                     "world_size": self.world_size, "plugdet_version": core.__version__},
            "state_dict": self.model.state_dict(),
            "optim": self.optim_wrapper.state_dict(),
            "param_schedulers": self.param_schedulers.state_dict(),
            "message_hub": self.message_hub.state_dict(),
            "rng": dist.all_gather_object(capture_rng_state()),
        }
        self.call_hook("before_save_checkpoint", checkpoint)
        if self.rank == 0:
            save_checkpoint(checkpoint, self.work_dir / filename)
            if update_last:
                write_last_checkpoint(self.work_dir, filename)
        if update_last:
            self.last_checkpoint = self.work_dir / filename
        dist.barrier()

    def resume(self, path: str | Path) -> None:
        """Restore the full training state of ``path``; training continues where it stopped."""
        assert self.optim_wrapper is not None
        checkpoint = load_checkpoint(path)
        for key in ("meta", "optim", "param_schedulers", "message_hub", "rng"):
            if key not in checkpoint:
                raise CheckpointError(
                    f"cannot resume from {path}: it has no {key!r} (a weights-only file? use "
                    f"load_from for those)")
        load_model_state(self.model, model_state_from(checkpoint, str(path)), str(path))
        meta = checkpoint["meta"]
        self.epoch, self.iter, self.iter_in_epoch = (meta["epoch"], meta["iter"],
                                                     meta["iter_in_epoch"])
        self.param_schedulers.load_state_dict(checkpoint["param_schedulers"], self.iter,
                                              self.epoch)
        self.optim_wrapper.load_state_dict(checkpoint["optim"])
        self.message_hub.load_state_dict(checkpoint["message_hub"])
        states = checkpoint["rng"]
        self._pending_rng = states[self.rank] if len(states) == self.world_size else states[0]
        self.call_hook("after_load_checkpoint", checkpoint)
        self.last_checkpoint = Path(path)
        self.logger.info(f"resumed from {path} at epoch {self.epoch + 1}, iteration {self.iter}")

    def close(self) -> None:
        """Close the vis backends and the log file."""
        self.visualizer.close()
        close_logger(self.logger)
        MessageHub.drop_instance(self.message_hub.name)


def _dataset_classes(*loaders: DataLoader | None) -> tuple[str, ...] | None:
    """The class names of the first loader's dataset that has them (train, val, test)."""
    for loader in loaders:
        classes = getattr(getattr(loader, "dataset", None), "classes", None)
        if classes:
            return tuple(classes)
    return None


def _run_name(work_dir: Path, log_name: str) -> str:
    """The name of a run's logger, MessageHub and Visualizer."""
    return f"{work_dir.resolve()}:{log_name}"


def _note_replaced(loader: DataLoader, batch: DetBatch) -> None:
    """Let the loader's dataset count the samples its worker processes replaced."""
    note = getattr(loader.dataset, "note_replaced", None)
    if note is not None:
        note(batch.samples)


def _prediction_record(sample: Any) -> dict[str, Any]:
    """The ``--test --out`` entry of one image; ``segmentation`` (one COCO RLE per box,
    ``counts`` as str) when the model predicts masks."""
    pred = sample.pred
    record = {"img_id": int(sample.img_id), "img_path": sample.img_path,
              "boxes": pred.boxes.tolist(), "scores": pred.scores.tolist(),
              "labels": pred.labels.tolist()}
    if pred.masks is not None:
        record["segmentation"] = encode_masks(pred.masks)
    return record


def _channels_last(model: nn.Module) -> bool:
    """Whether the detector (bare, or in its training wrappers) keeps its weights and feature
    maps channels-last."""
    inner = getattr(model, "module", model)  # DistributedDataParallel
    return bool(getattr(getattr(inner, "detector", inner), "channels_last", False))


def _precision(amp_dtype: torch.dtype | None) -> str:
    """``"float32"`` or the autocast dtype, as the start line names it."""
    return "float32" if amp_dtype is None else f"{str(amp_dtype).removeprefix('torch.')} autocast"
