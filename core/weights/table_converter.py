"""A base for weight converters (stage ``weight_converter``) whose keys map by a prefix table
(:mod:`core.weights.key_maps`): torchvision's and MMDetection's detectors.

Every parameter and buffer of the model needs a counterpart in the file and every tensor of
the file a place in the model (BatchNorm counters may be missing from the file: files with
frozen BatchNorm, such as torchvision's published weights, have none; they are then taken
from the model), shapes equal except the class rows, whose count comes from the file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar, Self

import attrs
from torch import Tensor, nn

from core.contracts import ConvertedState, PeerCheckpoint
from core.errors import CheckpointError
from core.weights.checkpoint import require_keys
from core.weights.key_maps import inverted_table, map_key

#: Suffix of the BatchNorm counters.
BN_COUNTER = "num_batches_tracked"


@attrs.frozen
class TableConverter(ABC):
    """A checkpoint of one source and architecture -> plugdet's names by :attr:`table`.

    An instance is one row of a plugin's converter table (the fields); a subclass per source
    sets the class attributes and writes :meth:`fits_model` and :meth:`convert` (with
    :meth:`checked_state`, :meth:`renamed` and :meth:`classes`). Register
    :meth:`build`.

    :ivar name: the registered name (``source/architecture``).
    :ivar config: the config that builds this architecture.
    :ivar table: the key table, source prefix -> our prefix.
    :ivar architectures: ``PeerCheckpoint.architecture`` values of this architecture.
    :ivar signature: a key that only this architecture's files have (for files that do not
        name it).
    """

    name: str
    config: str
    table: Mapping[str, str]
    architectures: tuple[str, ...]
    signature: str
    source: ClassVar[str]
    licence: ClassVar[str]
    #: Our keys whose dim 0 holds class rows: any size in the file.
    class_row_keys: ClassVar[tuple[str, ...]] = ()
    #: Classes of the file by its class count, when the file does not name them.
    known_classes: ClassVar[tuple[tuple[str, ...], ...]] = ()

    def build(self) -> Self:
        """This converter (the registry's factory)."""
        return self

    def normalized(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The file's state under the names the table uses (older layouts renamed)."""
        return dict(state)

    @abstractmethod
    def fits_model(self, model: nn.Module) -> bool:
        """Whether ``model`` has the architecture this converter converts into."""

    def accepts(self, checkpoint: PeerCheckpoint, model: nn.Module) -> bool:
        """A file of this source naming this architecture (or, unnamed, having its
        signature key) for a model that :meth:`fits_model`."""
        if checkpoint.source != self.source or not self.fits_model(model):
            return False
        if checkpoint.architecture:
            return checkpoint.architecture in self.architectures
        return self.signature in self.normalized(checkpoint.state)

    @abstractmethod
    def convert(self, checkpoint: PeerCheckpoint, model: nn.Module) -> ConvertedState:
        """Our state of ``model``'s architecture from the file."""

    def checked_state(self, checkpoint: PeerCheckpoint, ours: Mapping[str, Tensor]
                      ) -> dict[str, Tensor]:
        """The file's :meth:`normalized` state, every key and shape checked against ``ours``
        (the model's state).

        :raises CheckpointError: naming the file, for missing, unexpected or mis-shaped keys,
            or for model parameters this source has no counterpart of."""
        state = self.normalized(checkpoint.state)
        require_keys(attrs.evolve(checkpoint, state=state),
                     self._expected(checkpoint, state, ours), what=self.name)
        return state

    def renamed(self, state: Mapping[str, Tensor], ours: Mapping[str, Tensor]
                ) -> dict[str, Tensor]:
        """A :meth:`checked_state` under our names; BatchNorm counters the file lacks are
        the model's (from ``ours``)."""
        converted: dict[str, Tensor] = {}
        for key, value in state.items():
            name = map_key(key, self.table)
            assert name is not None  # checked_state checked every key
            converted[name] = value
        for key, value in ours.items():
            if key.endswith(BN_COUNTER):  # a file with frozen BatchNorm has none
                converted.setdefault(key, value.clone())
        return converted

    def source_key(self, key: str) -> str:
        """The file's name of our ``key`` (one the table maps)."""
        theirs = map_key(key, inverted_table(self.table))
        assert theirs is not None  # the tables map every class-row parameter
        return theirs

    def classes(self, checkpoint: PeerCheckpoint, num_classes: int
                ) -> tuple[str, ...] | None:
        """The file's classes: those it names, else :attr:`known_classes` of its count.

        :raises CheckpointError: the file names another number of classes."""
        if checkpoint.classes is not None:
            if len(checkpoint.classes) != num_classes:
                raise CheckpointError(
                    f"checkpoint {checkpoint.path} names {len(checkpoint.classes)} classes but "
                    f"its class predictor has {num_classes}")
            return checkpoint.classes
        return next((names for names in self.known_classes if len(names) == num_classes),
                    None)

    def _expected(self, checkpoint: PeerCheckpoint, state: Mapping[str, Tensor],
                  ours: Mapping[str, Tensor]) -> dict[str, tuple[int, ...]]:
        """The file's keys and shapes that ``ours`` needs; any number of class rows.

        :raises CheckpointError: the model has parameters this source has none of."""
        back = inverted_table(self.table)
        expected, unmatched = {}, []
        counters = any(key.endswith(BN_COUNTER) for key in state)
        for key, value in ours.items():
            theirs = map_key(key, back)
            if theirs is None:
                unmatched.append(key)
            elif counters or not key.endswith(BN_COUNTER):
                shape = tuple(value.shape)
                expected[theirs] = (-1, *shape[1:]) if key in self.class_row_keys else shape
        if unmatched:
            raise CheckpointError(
                f"checkpoint {checkpoint.path}: {self.name} has no counterpart of the model's "
                f"{', '.join(sorted(unmatched))}; {self.config} builds its architecture")
        return expected
