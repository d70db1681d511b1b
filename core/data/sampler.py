"""Samplers whose order is a pure function of ``(seed, epoch)``, resumable mid-epoch.

:class:`EpochSampler` yields ``(index, sample_seed)`` keys to datasets that declare
``accepts_sample_keys = True`` (see :class:`core.data.datasets.base.DetDataset`; other
datasets get plain indices): the permutation and the per-sample
augmentation seeds of an epoch are drawn from ``numpy.random.default_rng([seed, epoch])``, so
the data stream does not depend on the number of workers or on earlier interruptions. With
several processes each rank takes every ``num_replicas``-th key of the (padded) epoch, like
``torch.utils.data.DistributedSampler``.

:class:`ResumableBatchSampler` groups keys into batches and can start the next pass at a
batch offset: after ``batch_sampler.set_epoch(e)`` and ``batch_sampler.set_start_iter(k)``
the next iteration yields batches ``k, k+1, ...`` of epoch ``e``, exactly those an
uninterrupted run would have produced.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

#: ``(index, sample_seed)``, or a plain index for datasets that take only ints.
SampleKey = tuple[int, int] | int
SEED_HIGH = 2**31 - 1


class EpochSampler(Sampler[SampleKey]):
    """``(index, sample_seed)`` keys of one epoch for one rank.

    :param size: dataset length.
    :param shuffle: permute the indices every epoch.
    :param seed: base seed shared by all ranks.
    :param num_replicas: number of processes sharing the epoch.
    :param rank: this process.
    :param drop_last: drop the tail that does not divide evenly among ranks (else pad by
        repeating the first keys).
    :param with_seeds: yield ``(index, sample_seed)``; ``False`` yields plain indices (for
        datasets without ``accepts_sample_keys``).
    """

    def __init__(
        self,
        size: int,
        *,
        shuffle: bool,
        seed: int,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
        with_seeds: bool = True,
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        self.size = size
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.with_seeds = with_seeds
        self.epoch = 0
        if drop_last:
            self.per_rank = size // num_replicas
        else:
            self.per_rank = math.ceil(size / num_replicas)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration yields."""
        self.epoch = epoch

    def epoch_keys(self) -> list[SampleKey]:
        """This rank's keys of the current epoch."""
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.size) if self.shuffle else np.arange(self.size)
        seeds = rng.integers(0, SEED_HIGH, size=self.size)
        total = self.per_rank * self.num_replicas
        if total > self.size:  # pad by wrapping around
            repeat = math.ceil(total / self.size)
            order, seeds = np.tile(order, repeat)[:total], np.tile(seeds, repeat)[:total]
        order, seeds = order[:total], seeds[:total]
        mine = slice(self.rank, total, self.num_replicas)
        if not self.with_seeds:
            return order[mine].tolist()
        return list(zip(order[mine].tolist(), seeds[mine].tolist(), strict=True))

    def __iter__(self) -> Iterator[SampleKey]:
        return iter(self.epoch_keys())

    def __len__(self) -> int:
        return self.per_rank


class ResumableBatchSampler(Sampler[list[SampleKey]]):
    """Batches of an :class:`EpochSampler`, optionally starting at a batch offset.

    ``len()`` is the number of batches of a whole epoch; a pass after
    ``set_start_iter(k)`` yields ``len() - k`` batches, then the offset returns to 0.

    :param sampler: the key sampler.
    :param batch_size: keys per batch.
    :param drop_last: drop a last incomplete batch.
    """

    def __init__(self, sampler: EpochSampler, batch_size: int, drop_last: bool) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.start_iter = 0

    def set_epoch(self, epoch: int) -> None:
        """Forwarded to the key sampler."""
        self.sampler.set_epoch(epoch)

    def set_start_iter(self, start_iter: int) -> None:
        """Skip the first ``start_iter`` batches of the next pass only (exact resume)."""
        if not 0 <= start_iter <= len(self):
            raise ValueError(f"start_iter {start_iter} outside [0, {len(self)}]")
        self.start_iter = start_iter

    def __iter__(self) -> Iterator[list[SampleKey]]:
        keys = self.sampler.epoch_keys()
        start, self.start_iter = self.start_iter, 0
        for batch_index in range(start, len(self)):
            yield keys[batch_index * self.batch_size : (batch_index + 1) * self.batch_size]

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return math.ceil(len(self.sampler) / self.batch_size)
