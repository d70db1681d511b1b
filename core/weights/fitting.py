"""Fitting a converted checkpoint to a model whose classes may differ from the checkpoint's.

Every key of the model must be in the checkpoint with its shape, except the class rows
(:class:`~core.weights.checkpoint.ClassRows`) of a checkpoint with other classes: there the
rows that are not class rows are copied by position, the rows of each dataset class whose name
(or its ``class_map`` spelling) is a checkpoint class are copied from that class's rows (a
whole block of ``rows_per_class`` rows), and the rows of the other classes keep the model's own
initialisation (the usual prior). When either side names no classes, rows are kept by
position if the counts match and re-initialised otherwise (when neither does, the shapes
must match and each key's rows are copied as they are).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import torch
from torch import Tensor, nn

from core.errors import CheckpointError, ConfigError
from core.weights.checkpoint import ClassRows, ConvertedState, key_problems


@attrs.frozen
class FitReport:
    """What :func:`fit_to_model` loaded.

    :ivar path: the file or URI.
    :ivar origin: the converter that read it (``"ultralytics/yolov8"``) or ``"plugdet"``.
    :ivar loaded: how many tensors of the model were loaded from it (all of them).
    :ivar kept: ``(dataset class, checkpoint class)`` of each class whose rows were copied.
    :ivar reinitialised: the dataset classes whose rows keep the model's initialisation.
    :ivar by_position: the class rows were copied by position (a side names no classes).
    :ivar has_class_rows: the checkpoint has class rows at all.
    """

    path: str
    origin: str
    loaded: int
    kept: tuple[tuple[str, str], ...] = ()
    reinitialised: tuple[str, ...] = ()
    by_position: bool = False
    has_class_rows: bool = True

    def log_line(self) -> str:
        """One line: ``load_from yolov8n.pt (ultralytics/yolov8): 354 tensors loaded; class
        rows kept: person <- person, dog <- dog; re-initialised: raccoon``."""
        name = self.path if "://" in self.path else Path(self.path).name
        line = f"load_from {name} ({self.origin}): {self.loaded} tensors loaded"
        if not self.has_class_rows:
            return line
        if self.by_position:
            return f"{line}; class rows kept by position ({len(self.kept)} classes)"
        kept = ", ".join(f"{ours} <- {theirs}" for ours, theirs in self.kept) or "none"
        line = f"{line}; class rows kept: {kept}"
        return f"{line}; re-initialised: {', '.join(self.reinitialised)}" \
            if self.reinitialised else line


@attrs.frozen
class _ClassPlan:
    """For each of the model's ``C_m`` classes, the checkpoint row it takes (None: keep the
    model's own)."""

    sources: tuple[int | None, ...]
    checkpoint_count: int
    by_position: bool


def _plan(checkpoint_classes: tuple[str, ...] | None, checkpoint_count: int,
          dataset_classes: tuple[str, ...] | None, model_count: int,
          class_map: Mapping[str, str]) -> _ClassPlan:
    """Match classes by name (through ``class_map``) when both sides name them, else by
    position when the counts agree, else not at all."""
    if checkpoint_classes is not None and dataset_classes is not None:
        index: dict[str, int] = {}
        for row, name in enumerate(checkpoint_classes):
            index.setdefault(name, row)
        sources = tuple(index.get(class_map.get(name, name)) for name in dataset_classes)
        return _ClassPlan(sources, checkpoint_count, by_position=False)
    if checkpoint_count == model_count:
        return _ClassPlan(tuple(range(model_count)), checkpoint_count, by_position=True)
    return _ClassPlan((None,) * model_count, checkpoint_count, by_position=False)


def _shown(names: Sequence[str], limit: int = 20) -> str:
    """The first ``limit`` names, joined."""
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def _check_class_map(class_map: Mapping[str, str], checkpoint_classes: tuple[str, ...] | None,
                     dataset_classes: tuple[str, ...] | None, path: str) -> None:
    """Refuse a ``class_map`` entry naming a class neither side has."""
    if not class_map:
        return
    if checkpoint_classes is None or dataset_classes is None:
        side = "checkpoint" if checkpoint_classes is None else "dataset"
        raise ConfigError(f"load_from_class_map: the {side} of {path} names no classes to map")
    unknown = sorted(set(class_map) - set(dataset_classes))
    if unknown:
        raise ConfigError(f"load_from_class_map: {', '.join(unknown)} not among the dataset's "
                          f"classes ({_shown(dataset_classes)})")
    absent = sorted(f"{ours} = {theirs!r}" for ours, theirs in class_map.items()
                    if theirs not in checkpoint_classes)
    if absent:
        raise ConfigError(f"load_from_class_map: {', '.join(absent)}: no such class in {path} "
                          f"(its classes: {_shown(checkpoint_classes)})")


@attrs.frozen
class _Layout:
    """The rows of one class-row tensor: ``groups`` blocks of ``stride`` rows, ``count``
    classes of ``size`` rows each at ``offset .. offset + count * size - 1``, the other rows
    before and after them."""

    groups: int
    stride: int
    offset: int
    count: int
    size: int

    def class_rows(self, group: int, classes: Sequence[int]) -> list[int]:
        start = group * self.stride + self.offset
        return [start + index * self.size + row for index in classes for row in range(self.size)]

    def other_rows(self, group: int) -> list[int]:
        start = group * self.stride
        return [*range(start, start + self.offset),
                *range(start + self.offset + self.count * self.size, start + self.stride)]


def _layouts(rows: ClassRows, checkpoint: Tensor, model: Tensor,
             checkpoint_count: int | None, model_count: int | None
             ) -> tuple[_Layout, _Layout] | None:
    """The checkpoint's and the model's row layouts of one tensor; None when they cannot
    agree (a shape mismatch). Both sides have the same other rows per block: a side that names
    no classes takes them from the other side (from none: the rows after ``offset`` are all
    classes, and the shapes must match)."""
    groups, size = rows.groups, rows.rows_per_class
    if groups < 1 or size < 1 or checkpoint.shape[1:] != model.shape[1:] or \
            checkpoint.shape[0] % groups or model.shape[0] % groups:
        return None
    theirs_stride = rows.stride if rows.stride is not None else checkpoint.shape[0] // groups
    ours_stride = model.shape[0] // groups
    if theirs_stride * groups != checkpoint.shape[0]:
        return None
    extras = {stride - count * size for stride, count in ((theirs_stride, checkpoint_count),
                                                          (ours_stride, model_count))
              if count is not None}
    if len(extras) > 1 or (not extras and theirs_stride != ours_stride):
        return None
    extra = extras.pop() if extras else rows.offset
    if extra < rows.offset or min(theirs_stride, ours_stride) < extra or \
            (theirs_stride - extra) % size or (ours_stride - extra) % size:
        return None
    return (_Layout(groups, theirs_stride, rows.offset, (theirs_stride - extra) // size, size),
            _Layout(groups, ours_stride, rows.offset, (ours_stride - extra) // size, size))


def _fill(checkpoint: Tensor, model: Tensor, theirs: _Layout, ours: _Layout,
          sources: Sequence[int | None]) -> Tensor:
    """The model's tensor with the other rows and the matched class rows of ``checkpoint``."""
    fitted = model.detach().clone()
    matched = [(ours_row, theirs_row) for ours_row, theirs_row in enumerate(sources)
               if theirs_row is not None]
    targets: list[int] = []
    origins: list[int] = []
    for group in range(ours.groups):
        targets += ours.other_rows(group) + ours.class_rows(group, [m for m, _ in matched])
        origins += theirs.other_rows(group) + theirs.class_rows(group, [t for _, t in matched])
    if targets:
        fitted[torch.tensor(targets)] = checkpoint[torch.tensor(origins)].to(fitted.dtype)
    return fitted


def _describe_mismatch(key: str, checkpoint: Tensor, model: Tensor) -> str:
    return f"{key} (checkpoint {tuple(checkpoint.shape)} vs model {tuple(model.shape)})"


def fit_to_model(converted: ConvertedState, model: nn.Module,
                 dataset_classes: Sequence[str] | None,
                 class_map: Mapping[str, str] | None = None, path: str = "",
                 origin: str = "") -> FitReport:
    """Load ``converted`` into ``model``: every key whose shape fits, and the class rows of
    the dataset's classes found in the checkpoint (see the module docstring).

    :param dataset_classes: the model's classes in row order (the dataset's), or None.
    :param class_map: dataset class -> checkpoint class, for other spellings.
    :param path: the file or URI, for messages and the report.
    :param origin: the converter's name, for the report.
    :raises CheckpointError: listing the missing, unexpected and mis-shaped keys (a class-row
        key whose rows fit is not mis-shaped).
    :raises ConfigError: a ``class_map`` entry names a class one side lacks.
    """
    class_map = dict(class_map or {})
    ours_classes = tuple(dataset_classes) if dataset_classes is not None else None
    _check_class_map(class_map, converted.classes, ours_classes, path)
    own = model.state_dict()
    state = converted.state
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    unknown_rows = sorted(set(converted.class_rows) - set(state))
    if unknown_rows:
        raise CheckpointError(f"{origin or 'the converter'}: class rows of keys it did not "
                              f"convert: {', '.join(unknown_rows)}")
    fitted: dict[str, Tensor] = {}
    mismatched: list[str] = []
    plan: _ClassPlan | None = None
    theirs_count = len(converted.classes) if converted.classes is not None else None
    ours_count = len(ours_classes) if ours_classes is not None else None
    named = theirs_count is not None or ours_count is not None
    for key in sorted(set(own) & set(state)):
        rows = converted.class_rows.get(key)
        if rows is None:
            if state[key].shape == own[key].shape:
                fitted[key] = state[key]
            else:
                mismatched.append(_describe_mismatch(key, state[key], own[key]))
            continue
        layouts = _layouts(rows, state[key], own[key], theirs_count, ours_count)
        if layouts is None or (named and plan is not None
                               and plan.checkpoint_count != layouts[0].count):
            mismatched.append(_describe_mismatch(key, state[key], own[key]))
            continue
        theirs, ours = layouts
        key_plan = plan if named and plan is not None else \
            _plan(converted.classes, theirs.count, ours_classes, ours.count, class_map)
        plan = plan or key_plan
        if len(key_plan.sources) != ours.count:
            mismatched.append(_describe_mismatch(key, state[key], own[key]))
            continue
        fitted[key] = _fill(state[key], own[key], theirs, ours, key_plan.sources)
    problems = key_problems(missing, unexpected, sorted(mismatched))
    if problems:
        source = f"{path} ({origin})" if origin else path
        raise CheckpointError(
            f"checkpoint {source} does not fit the model {type(model).__name__}:{problems}")
    model.load_state_dict(fitted, strict=True)
    return _report(path, origin, len(fitted), plan, ours_classes, converted.classes)


def _report(path: str, origin: str, loaded: int, plan: _ClassPlan | None,
            dataset_classes: tuple[str, ...] | None,
            checkpoint_classes: tuple[str, ...] | None) -> FitReport:
    if plan is None:
        return FitReport(path, origin, loaded, has_class_rows=False)
    ours = dataset_classes or tuple(str(index) for index in range(len(plan.sources)))
    theirs = checkpoint_classes or tuple(str(index) for index in range(plan.checkpoint_count))
    kept = tuple((ours[m], theirs[t]) for m, t in enumerate(plan.sources) if t is not None)
    reinitialised = tuple(ours[m] for m, t in enumerate(plan.sources) if t is None)
    return FitReport(path, origin, loaded, kept, reinitialised, plan.by_position)
