"""MessageHub: named scalar histories and runtime info shared by every part of a run.

Engine code (a hook, the runner) reports a number with::

    MessageHub.get_current_instance().update_scalar("train/grad_norm", n)

Model code never imports the engine: a head returns its scalars (``num_pos``, assigner
statistics) in its loss dict and the runner records them as ``train/<key>``.

The logger hook reads the window mean of every ``train/*`` scalar at each log step and sends it
to the text log and to every vis backend.
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

import torch

#: Values kept per scalar; enough for any log window and small enough to checkpoint.
DEFAULT_HISTORY_LENGTH = 1000
DEFAULT_INSTANCE_NAME = "plugdet"


def _to_float(value: float | int | torch.Tensor) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"a scalar needs exactly one element, got shape {tuple(value.shape)}")
        return float(value.detach().item())
    return float(value)


class HistoryBuffer:
    """The last ``max_length`` updates of one scalar, each a ``(value, count)`` pair.

    ``value`` is a sum over ``count`` items (e.g. a per-image mean reported with
    ``count = batch size`` is stored as ``mean * count``) so windowed means weight by count.
    """

    def __init__(self, max_length: int = DEFAULT_HISTORY_LENGTH) -> None:
        self._values: deque[float] = deque(maxlen=max_length)
        self._counts: deque[int] = deque(maxlen=max_length)
        #: updates ever recorded (unlike ``len``, not capped by ``max_length``)
        self.num_updates = 0

    def update(self, value: float, count: int = 1) -> None:
        """Record ``value`` (the mean over ``count`` items)."""
        self._values.append(value * count)
        self._counts.append(count)
        self.num_updates += 1

    def __len__(self) -> int:
        return len(self._values)

    def current(self) -> float:
        """The latest value (the mean of its ``count`` items)."""
        if not self._values:
            raise ValueError("the history is empty")
        return self._values[-1] / self._counts[-1]

    def mean(self, window: int | None = None) -> float:
        """Count-weighted mean of the last ``window`` updates (all when ``None``)."""
        if not self._values:
            raise ValueError("the history is empty")
        values = list(self._values)[-window:] if window else list(self._values)
        counts = list(self._counts)[-window:] if window else list(self._counts)
        return sum(values) / sum(counts)

    def state_dict(self) -> dict[str, Any]:
        """Plain lists (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "values": list(self._values),
            "counts": list(self._counts),
            "max_length": self._values.maxlen,
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self._values = deque(state["values"], maxlen=state["max_length"])
        self._counts = deque(state["counts"], maxlen=state["max_length"])
        self.num_updates = state["num_updates"]


class MessageHub:
    """Named scalar histories plus a ``runtime_info`` dict (epoch, iter, ...).

    Instances are kept by name; the one created or fetched last is the *current* instance.
    """

    _instances: ClassVar[dict[str, MessageHub]] = {}
    _current_name: ClassVar[str | None] = None

    def __init__(self, name: str) -> None:
        self.name = name
        self._scalars: dict[str, HistoryBuffer] = {}
        #: run state (epoch, iter, ...); plain Python values only, it is checkpointed
        self.runtime_info: dict[str, Any] = {}

    @classmethod
    def get_instance(cls, name: str = DEFAULT_INSTANCE_NAME) -> MessageHub:
        """The instance called ``name`` (created if new); it becomes the current instance."""
        if name not in cls._instances:
            cls._instances[name] = cls(name)
        cls._current_name = name
        return cls._instances[name]

    @classmethod
    def get_current_instance(cls) -> MessageHub:
        """The instance fetched last (a default one if none exists yet)."""
        if cls._current_name is None:
            return cls.get_instance(DEFAULT_INSTANCE_NAME)
        return cls._instances[cls._current_name]

    @classmethod
    def drop_instance(cls, name: str) -> None:
        """Forget the instance called ``name`` (a finished run's hub)."""
        cls._instances.pop(name, None)
        if cls._current_name == name:
            cls._current_name = None

    def update_scalar(self, key: str, value: float | int | torch.Tensor, count: int = 1) -> None:
        """Record one value (a Python number or a one-element tensor) of scalar ``key``."""
        self._scalars.setdefault(key, HistoryBuffer()).update(_to_float(value), count)

    def get_scalar(self, key: str) -> HistoryBuffer:
        """The history of ``key``; KeyError naming the known keys if it was never updated."""
        if key not in self._scalars:
            raise KeyError(f"no scalar {key!r} in message hub {self.name!r}; known: "
                           f"{sorted(self._scalars)}")
        return self._scalars[key]

    @property
    def scalar_keys(self) -> list[str]:
        """Every scalar key seen so far, sorted."""
        return sorted(self._scalars)

    def update_info(self, key: str, value: Any) -> None:
        """Set ``runtime_info[key]``."""
        self.runtime_info[key] = value

    def get_info(self, key: str, default: Any = None) -> Any:
        """``runtime_info[key]`` or ``default``."""
        return self.runtime_info.get(key, default)

    def state_dict(self) -> dict[str, Any]:
        """Histories and runtime info as plain Python types."""
        return {
            "scalars": {key: buf.state_dict() for key, buf in self._scalars.items()},
            "runtime_info": dict(self.runtime_info),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self._scalars = {}
        for key, buf_state in state["scalars"].items():
            buf = HistoryBuffer()
            buf.load_state_dict(buf_state)
            self._scalars[key] = buf
        self.runtime_info = dict(state["runtime_info"])
