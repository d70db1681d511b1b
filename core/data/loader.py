"""Building data loaders from config tables.

``build_dataloader(cfg, path=..., seed=...)`` with ``cfg`` like::

    batch_size = 8
    num_workers = 2
    shuffle = true
    drop_last = false
    persistent_workers = true     # optional (default: num_workers > 0)
    pin_memory = false            # optional
    pad_value = 0.0               # optional, padding of the batch tensor
    size_divisor = 1              # optional, batch H/W rounded up to a multiple
    dataset = {type = "ShapesDataset", pipeline = [...]}

The loader yields :class:`~core.structures.DetBatch`. Its ``batch_sampler`` is a
:class:`~core.data.sampler.ResumableBatchSampler`: call ``loader.batch_sampler.set_epoch(e)``
before each epoch and ``loader.batch_sampler.set_start_iter(k)`` to resume at batch ``k``.
Views produced by :class:`~core.data.transforms.tta.TestTimeAug` are flattened into the batch
with ``meta["tta_group"]`` naming their image.
"""

from __future__ import annotations

import functools
import gc
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from core.data.sampler import EpochSampler, ResumableBatchSampler
from core.data.threads import single_threaded
from core.data.transforms.tta import TTA_GROUP_KEY
from core.errors import ConfigError
from core.structures import DetBatch, DetSample, collate

LOADER_KEYS = {
    "batch_size": int,
    "num_workers": int,
    "shuffle": bool,
    "drop_last": bool,
    "persistent_workers": bool,
    "pin_memory": bool,
    "pad_value": (int, float),
    "size_divisor": int,
    "dataset": Mapping,
}


def collate_samples(
    items: Sequence[DetSample | list[DetSample]], pad_value: float = 0.0, size_divisor: int = 1
) -> DetBatch:
    """Collate samples (or lists of TTA views, flattened and tagged) into one batch."""
    samples: list[DetSample] = []
    for position, item in enumerate(items):
        if isinstance(item, list):
            for view in item:
                view.meta[TTA_GROUP_KEY] = position
            samples.extend(item)
        else:
            samples.append(item)
    with single_threaded():
        return collate(samples, pad_value=pad_value, size_divisor=size_divisor)


def seed_worker(worker_id: int) -> None:
    """Seed ``random``, NumPy and torch in a worker from the loader's generator.

    Built-in transforms draw from the per-sample generator and need none of this; it makes
    third-party transforms that use global random state reproducible too.
    """
    worker_seed = torch.initial_seed() % 2**32
    random.seed(worker_seed)
    np.random.seed(worker_seed)


def _check(cfg: Mapping[str, Any], path: str) -> None:
    unknown = sorted(set(cfg) - set(LOADER_KEYS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)}; allowed keys: {', '.join(LOADER_KEYS)}"
        )
    if "dataset" not in cfg:
        raise ConfigError(f"{path}.dataset: required key missing")
    for key, kind in LOADER_KEYS.items():
        value = cfg.get(key)
        if value is None:
            continue
        bad_bool = isinstance(value, bool) and kind is not bool
        if bad_bool or not isinstance(value, kind):
            expected = kind.__name__ if isinstance(kind, type) else "number"
            raise ConfigError(f"{path}.{key}: expected {expected}, got {value!r}")
    for key in ("batch_size", "size_divisor"):
        if key in cfg and cfg[key] <= 0:
            raise ConfigError(f"{path}.{key}: must be positive, got {cfg[key]}")
    if cfg.get("num_workers", 0) < 0:
        raise ConfigError(f"{path}.num_workers: must be >= 0, got {cfg['num_workers']}")


class DetDataLoader(DataLoader):
    """A ``DataLoader`` whose worker processes leave the parent's objects alone.

    Before its workers fork, every object the main process holds is moved out of reach of the
    garbage collector (``gc.freeze``) and moved back once they run: a worker's collections
    then never write to the pages of those objects, which stay shared with the parent instead
    of being copied page by page through an epoch.
    """

    def _get_iterator(self) -> Any:
        if self.num_workers == 0:
            return super()._get_iterator()
        gc.collect()
        gc.freeze()
        try:
            return super()._get_iterator()
        finally:
            gc.unfreeze()


def build_dataloader(
    cfg: Mapping[str, Any], *, path: str, seed: int, distributed: bool = False
) -> DataLoader:
    """A loader yielding :class:`DetBatch` (see the module docstring for ``cfg``).

    :param cfg: the loader table (``train_dataloader`` etc.).
    :param path: its dotted config path, used in error messages.
    :param seed: base seed of the sample order and augmentation.
    :param distributed: shard the data among ``torch.distributed`` ranks (when initialized).
    :raises ConfigError: a key or value of ``cfg`` is wrong.
    """
    from core.plugins import get_registries

    _check(cfg, path)
    dataset = get_registries().build("dataset", cfg["dataset"], path=f"{path}.dataset")
    num_replicas, rank = 1, 0
    if distributed and dist.is_available() and dist.is_initialized():
        num_replicas, rank = dist.get_world_size(), dist.get_rank()
    drop_last = cfg.get("drop_last", False)
    sampler = EpochSampler(
        len(dataset),
        shuffle=cfg.get("shuffle", False),
        seed=seed,
        num_replicas=num_replicas,
        rank=rank,
        drop_last=drop_last,
        with_seeds=getattr(dataset, "accepts_sample_keys", False),
    )
    batch_sampler = ResumableBatchSampler(sampler, cfg.get("batch_size", 1), drop_last)
    num_workers = cfg.get("num_workers", 0)
    return DetDataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        collate_fn=functools.partial(
            collate_samples,
            pad_value=float(cfg.get("pad_value", 0.0)),
            size_divisor=cfg.get("size_divisor", 1),
        ),
        pin_memory=cfg.get("pin_memory", False),
        worker_init_fn=seed_worker if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=cfg.get("persistent_workers", num_workers > 0) and num_workers > 0,
    )


def restart_workers(loader: DataLoader) -> None:
    """Make the next ``iter(loader)`` start fresh worker processes.

    Persistent workers keep the copy of the dataset made when they started, so a change of
    the dataset (such as a new pipeline) reaches them only through new workers. The loader's
    generator is put back to its seed, so the new workers get the same seeds as the workers
    of a run started (or resumed) afresh at this point.
    """
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None:
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        loader._iterator = None
    if loader.generator is not None:
        loader.generator.manual_seed(loader.generator.initial_seed())
