"""The transform protocol and the pipeline that runs transforms over a sample.

A transform is a callable ``transform(sample, rng) -> DetSample``: it may change the sample in
place and returns the sample to continue with. ``rng`` is a :class:`numpy.random.Generator`
owned by the dataset for this one sample (derived from the sampler's per-sample seed), so
augmentation is a pure function of ``(seed, epoch, position)`` whatever the number of workers.
A plain ``transform(sample) -> DetSample`` (one parameter) works too; it gets no ``rng``.

Transforms that need other samples of the dataset (Mosaic, MixUp) derive from
:class:`MixTransform`: the pipeline asks how many extra samples the call needs, fetches them
from a :class:`SampleSource` (the dataset) prepared by the non-mixing transforms that precede
the mixing one, and passes them in. A transform that expands one sample into several views
(test-time augmentation) returns a list; only the last transform of a pipeline may do so.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import attrs
import numpy as np

from core.errors import DataError
from core.structures import DetSample

Prepare = Callable[[DetSample, np.random.Generator], DetSample]


@runtime_checkable
class Transform(Protocol):
    """``transform(sample, rng) -> DetSample`` (changes ``sample`` in place or returns another)."""

    def __call__(self, sample: DetSample, rng: np.random.Generator) -> DetSample: ...


class SampleSource(Protocol):
    """Where mixing transforms get other samples from (a dataset implements it)."""

    def random_sample(self, rng: np.random.Generator, prepare: Prepare) -> DetSample:
        """A randomly chosen sample (drawn with ``rng``), loaded and passed through ``prepare``."""
        ...


class MixTransform(abc.ABC):
    """Base of transforms that combine the sample with other samples of the dataset."""

    @abc.abstractmethod
    def mix_count(self, rng: np.random.Generator) -> int:
        """How many extra samples this call needs; 0 skips the transform for this sample."""

    @abc.abstractmethod
    def __call__(
        self, sample: DetSample, rng: np.random.Generator, others: list[DetSample]
    ) -> DetSample:
        """Combine ``sample`` with ``others`` (prepared by the transforms before this one)."""


def clone_sample(sample: DetSample) -> DetSample:
    """A shallow copy with its own ``meta`` dict (tensors are shared, never changed in place)."""
    return attrs.evolve(sample, meta=dict(sample.meta))


def takes_rng(transform: Callable[..., object]) -> bool:
    """Whether ``transform`` accepts a second positional argument (the per-sample ``rng``)."""
    try:
        parameters = inspect.signature(transform).parameters.values()
    except (TypeError, ValueError):  # no introspectable signature: assume the full protocol
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in parameters)


class WithoutRng:
    """Adapts a one-parameter ``transform(sample)`` to ``transform(sample, rng)``."""

    def __init__(self, transform: Callable[[DetSample], DetSample]) -> None:
        self.transform = transform

    def __call__(self, sample: DetSample, rng: np.random.Generator) -> DetSample:
        return self.transform(sample)


class Pipeline:
    """Runs transforms in order; supplies mixing transforms with other samples.

    :param transforms: built transforms (callables following :class:`Transform`, or
        :class:`MixTransform` instances).
    """

    def __init__(self, transforms: Sequence[Transform | MixTransform]) -> None:
        self.transforms = list(transforms)
        for index, transform in enumerate(self.transforms):
            if not callable(transform):
                raise DataError(f"pipeline[{index}]: {transform!r} is not a transform")
        self._steps = [
            t if isinstance(t, MixTransform) or takes_rng(t) else WithoutRng(t)
            for t in self.transforms
        ]

    def __call__(
        self, sample: DetSample, rng: np.random.Generator, source: SampleSource | None = None
    ) -> DetSample | list[DetSample]:
        """Transform ``sample``; a list comes back only from a final view-expanding transform."""
        result: DetSample | list[DetSample] = sample
        for index, transform in enumerate(self._steps):
            if isinstance(result, list):
                raise DataError(
                    f"pipeline[{index - 1}] ({type(self.transforms[index - 1]).__name__}) "
                    "returned several views; it must be the last transform of the pipeline"
                )
            if isinstance(transform, MixTransform):
                count = transform.mix_count(rng)
                if count == 0:
                    continue
                if source is None:
                    raise DataError(
                        f"pipeline[{index}] ({type(transform).__name__}) mixes several samples "
                        "and needs the dataset as sample source"
                    )
                prepare = self._prefix(index)
                others = [source.random_sample(rng, prepare) for _ in range(count)]
                result = transform(result, rng, others)
            else:
                result = transform(result, rng)
        return result

    def _prefix(self, stop: int) -> Prepare:
        """The non-mixing transforms before ``stop``, for preparing samples to be mixed in."""
        steps = [t for t in self._steps[:stop] if not isinstance(t, MixTransform)]

        def prepare(sample: DetSample, rng: np.random.Generator) -> DetSample:
            for step in steps:
                sample = step(sample, rng)
            return sample

        return prepare

    def __repr__(self) -> str:
        names = ", ".join(type(t).__name__ for t in self.transforms)
        return f"Pipeline([{names}])"
