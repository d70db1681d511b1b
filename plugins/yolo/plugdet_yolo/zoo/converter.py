"""The YOLO-family weight converter: a peer checkpoint of one architecture and size ->
plugdet's state dict of the same model, by a key map. A converter is data: an
:class:`Architecture` (what the sizes of one architecture from one source share) and a size."""

from __future__ import annotations

import attrs
from torch import nn

from core.api import ClassRows, ConvertedState, PeerCheckpoint, require_keys
from plugdet_yolo.zoo.checks import FileCheck, dense_head, num_levels
from plugdet_yolo.zoo.keymap import KeyMap


@attrs.frozen
class ClassLayout:
    """Where a head keeps its class rows.

    :ivar module: plugdet's class predictor of level ``{}`` (its weight and bias rows hold
        the classes).
    :ivar dependent: plugdet module prefix whose shapes depend on the class count (checked
        only when the file has the model's class count; fitting the rest is the loader's).
    :ivar groups: blocks of rows (anchors per cell).
    :ivar leading_rows: rows before the classes in each block (YOLOv5: 4 box, 1 objectness).
    """

    module: str
    dependent: str
    groups: int = 1
    leading_rows: int = 0

    def num_classes(self, rows: int) -> int | None:
        """The class count of a predictor with ``rows`` output rows; None if none fits."""
        classes = rows // self.groups - self.leading_rows
        return classes if rows % self.groups == 0 and classes > 0 else None

    def class_rows(self, num_classes: int) -> ClassRows:
        """The rows of ``num_classes`` classes."""
        if self.groups == 1 and self.leading_rows == 0:
            return ClassRows()
        return ClassRows(groups=self.groups, stride=self.leading_rows + num_classes,
                         offset=self.leading_rows)


@attrs.frozen
class Architecture:
    """One architecture as one source writes it: a file of :attr:`source` for a
    ``YOLODetector`` with :attr:`backbone_type` and :attr:`head_type`.

    :ivar licence: of the published weights.
    :ivar keymap: plugdet key -> the file's key.
    :ivar marker: a file key only this architecture has.
    :ivar stem_key: the file key of the stem conv, whose output channels tell the size.
    :ivar classes: where the head keeps its class rows.
    :ivar checks: file keys that are checked, not loaded.
    :ivar dropped: substrings of file keys that are dropped when present (buffers of older
        releases).
    """

    source: str
    licence: str
    keymap: KeyMap
    backbone_type: str
    head_type: str
    marker: str
    stem_key: str
    classes: ClassLayout
    checks: tuple[FileCheck, ...] = ()
    dropped: tuple[str, ...] = ()


@attrs.frozen
class ZooConverter:
    """Converts a file of one :attr:`architecture` and size; it accepts a file that has the
    architecture's marker and whose stem has :attr:`stem_channels` outputs.

    Every key of the model is mapped by the key map; the file must have exactly those keys
    (and :meth:`extra_keys`, which are checked, not loaded), with the model's shapes. When the
    file's class count differs from the model's, the shapes under the class layout's
    ``dependent`` prefix are left to the loader, which keeps the rows of shared class names.

    :ivar name: the registered name.
    :ivar config: the shipped config that builds this architecture and size.
    """

    name: str
    config: str
    stem_channels: int
    architecture: Architecture

    @property
    def source(self) -> str:
        """The :attr:`PeerCheckpoint.source` this converter reads."""
        return self.architecture.source

    @property
    def licence(self) -> str:
        """The licence of the published weights."""
        return self.architecture.licence

    def build(self) -> ZooConverter:
        """This converter: the factory, without arguments, registered in the
        ``weight_converter`` stage (a converter is an immutable row)."""
        return self

    def accepts(self, checkpoint: PeerCheckpoint, model: nn.Module) -> bool:
        """The file is this converter's architecture and size, the model the same
        architecture (any size: :meth:`convert` lists what does not fit)."""
        arch = self.architecture
        stem = checkpoint.state.get(arch.stem_key)
        return (checkpoint.source == arch.source and arch.marker in checkpoint.state
                and stem is not None and stem.shape[0] == self.stem_channels
                and type(getattr(model, "backbone", None)).__name__ == arch.backbone_type
                and type(getattr(model, "head", None)).__name__ == arch.head_type)

    def convert(self, checkpoint: PeerCheckpoint, model: nn.Module) -> ConvertedState:
        """The file's tensors under plugdet's keys, with the class rows of the predictors.

        :raises CheckpointError: naming the file and every missing, unexpected and
            mis-shaped key, or a value plugdet cannot take (see the architecture's checks).
        """
        arch = self.architecture
        checkpoint = attrs.evolve(checkpoint, state={
            key: value for key, value in checkpoint.state.items()
            if not any(part in key for part in arch.dropped)})
        names = arch.keymap.peer_names(model)
        model_classes = dense_head(model).num_classes
        file_classes = self.file_classes(checkpoint, names) or model_classes
        expected: dict[str, tuple[int, ...]] = {}
        for key, tensor in model.state_dict().items():
            shape = arch.keymap.peer_shape(key, tuple(tensor.shape))
            if file_classes != model_classes and key.startswith(arch.classes.dependent + "."):
                shape = (-1,) * len(shape)
            expected[names[key]] = shape
        expected.update(self.extra_keys(model))
        require_keys(checkpoint, expected,
                     what=f"the model through {self.name} ({self.config} builds the file's)")
        for check in arch.checks:
            check.check(checkpoint, model)
        state = {key: arch.keymap.to_plugdet(key, checkpoint.state[peer])
                 for key, peer in names.items()}
        rows = arch.classes.class_rows(file_classes)
        class_rows = {f"{arch.classes.module.format(level)}.{param}": rows
                      for level in range(num_levels(model)) for param in ("weight", "bias")}
        return ConvertedState(state, class_rows, checkpoint.classes)

    def extra_keys(self, model: nn.Module) -> dict[str, tuple[int, ...]]:
        """File keys that plugdet does not load (fixed or repeated values; the architecture's
        checks), with shapes."""
        return {key: shape for check in self.architecture.checks
                for key, shape in check.keys(model).items()}

    def file_classes(self, checkpoint: PeerCheckpoint, names: dict[str, str]) -> int | None:
        """The class count of the file's first class predictor; None without one."""
        classes = self.architecture.classes
        bias = checkpoint.state.get(names.get(f"{classes.module.format(0)}.bias", ""))
        return None if bias is None else classes.num_classes(bias.shape[0])
