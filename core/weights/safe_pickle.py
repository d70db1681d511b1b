"""Reading a torch checkpoint file whose pickle holds whole objects, without running any code.

ultralytics and YOLOv5 ``.pt`` files pickle the model object itself
(``ultralytics.nn.tasks.DetectionModel``, ``models.yolo.DetectionModel``), and MMEngine files
may hold numpy scalars or a ``ConfigDict``; ``torch.load(weights_only=True)`` refuses all of
them. :func:`load_restricted` reads such a file (the zip format of torch >= 1.6 and the legacy
format) with an unpickler that never imports a module and never calls anything the file names:

* tensors are rebuilt from the file's storage records (``torch._utils._rebuild_tensor_v2``,
  ``_rebuild_parameter``, ``torch._tensor._rebuild_from_type_v2``), by plugdet's own code;
* plain containers (``dict``, ``OrderedDict``, ``list``, ``tuple``, ``set``, ``frozenset``),
  torch dtypes and storage types, numpy scalars (decoded to Python numbers) are allowed;
* a class under one of :data:`RECORD_PREFIXES` (by its CamelCase name) becomes a
  :class:`PickledObject`: its name, its constructor arguments and its pickled state, inert;
* every other global (``os.system``, ``builtins.eval``, ``subprocess.call``, any function) is
  refused with a :class:`~core.errors.CheckpointError` of one line naming the file and the
  global, before anything of the file is used.

:func:`module_state_dict` then names the tensors of a pickled ``nn.Module`` tree as
``nn.Module.state_dict()`` would.
"""

from __future__ import annotations

import _compat_pickle
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import torch
from torch import Tensor

from core.errors import CheckpointError

#: Modules whose classes (CamelCase names) become inert :class:`PickledObject` records:
#: ultralytics, YOLOv5 (``models.``, ``utils.``, or ``yolov5.`` when pip-installed), torch's
#: layers, OpenMMLab's config and logging classes, paths and argparse namespaces.
RECORD_PREFIXES = ("ultralytics.", "models.", "utils.", "yolov5.", "torch.nn.modules.",
                   "torch.nn.parameter", "mmengine.", "mmdet.", "mmyolo.", "mmcv.", "pathlib",
                   "argparse")
#: The legacy (non-zip) torch format: its magic number and protocol version.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "HalfStorage": torch.float16, "FloatStorage": torch.float32, "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128,
}
_DTYPES: dict[str, torch.dtype] = {
    name: dtype for name, dtype in vars(torch).items() if isinstance(dtype, torch.dtype)
}
#: numpy scalar type codes -> struct formats (numpy scalars are decoded, never rebuilt).
_NUMPY_SCALARS = {"f2": "e", "f4": "f", "f8": "d", "i1": "b", "i2": "h", "i4": "i", "i8": "q",
                  "u1": "B", "u2": "H", "u4": "I", "u8": "Q", "b1": "?"}


class PickledObject:
    """An object of a class the file names, kept as data: the class is never imported and none
    of its code runs.

    :ivar qualified_name: ``module.Class`` as the pickle names it (a class attribute).
    :ivar args: the arguments the pickle would have constructed it with.
    :ivar state: what the pickle would have passed to ``__setstate__`` (usually the
        instance ``__dict__``), or None.
    :ivar items: the entries the pickle would have set on it (dict subclasses).
    :ivar list_items: the entries it would have appended (list subclasses).
    """

    qualified_name: ClassVar[str] = ""
    args: tuple[Any, ...]
    state: Any
    items: dict[Any, Any]
    list_items: list[Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> PickledObject:
        record = super().__new__(cls)
        record.args = args
        record.state = None
        record.items = {}
        record.list_items = []
        return record

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Nothing: :meth:`__new__` kept the arguments."""

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        """What unpickling a list subclass calls."""
        self.list_items.append(value)

    def extend(self, values: Any) -> None:
        """What unpickling a list subclass calls."""
        self.list_items.extend(values)

    def attributes(self) -> dict[str, Any]:
        """The instance attributes in its state (a dict, or the dict of ``(dict, slots)``)."""
        state = self.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = {**state[0], **(state[1] or {})}
        return state if isinstance(state, dict) else {}

    def __repr__(self) -> str:
        return f"<pickled {self.qualified_name}>"


_RECORD_CLASSES: dict[str, type[PickledObject]] = {}


def record_class(qualified_name: str) -> type[PickledObject]:
    """The :class:`PickledObject` subclass standing for the class ``qualified_name``."""
    if qualified_name not in _RECORD_CLASSES:
        name = qualified_name.rsplit(".", 1)[-1]
        _RECORD_CLASSES[qualified_name] = type(name, (PickledObject,),
                                               {"qualified_name": qualified_name})
    return _RECORD_CLASSES[qualified_name]


class _Storage:
    """One storage of the file: its bytes and a flat tensor of ``dtype`` viewing them.

    The tensor shares the bytes, so a storage of the legacy format (filled after the pickle
    is read) is seen by the tensors rebuilt on it before.
    """

    def __init__(self, dtype: torch.dtype, data: bytearray) -> None:
        self.dtype = dtype
        self.data = data
        self.flat = (torch.frombuffer(data, dtype=dtype) if data
                     else torch.empty(0, dtype=dtype))

    def view(self, offset: int, numel: int) -> _Storage:
        """A storage over ``numel`` elements from ``offset`` (legacy storage views)."""
        view = _Storage.__new__(_Storage)
        view.dtype, view.data = self.dtype, self.data
        view.flat = self.flat[offset:offset + numel]
        return view


class _StorageType:
    """A torch storage type named in the pickle (``torch.HalfStorage``): only its dtype."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


def _rebuild_tensor(storage: Any, storage_offset: int, size: Any, stride: Any,
                    *_: Any) -> Tensor:
    """``torch._utils._rebuild_tensor_v2``: a view of ``storage`` (the other arguments,
    ``requires_grad``, hooks and metadata, do not matter for weights)."""
    if not isinstance(storage, _Storage):
        raise CheckpointError(f"a tensor is rebuilt from {type(storage).__name__}, "
                              "not a storage of the file")
    return storage.flat.as_strided(tuple(size), tuple(stride), int(storage_offset))


def _rebuild_parameter(data: Any, *_: Any) -> Tensor:
    """``torch._utils._rebuild_parameter(_with_state)``: the parameter's tensor."""
    if not isinstance(data, Tensor):
        raise CheckpointError(f"a parameter holds {type(data).__name__}, not a tensor")
    return data


def _rebuild_from_type(function: Any, _new_type: Any, args: Any, _state: Any) -> Any:
    """``torch._tensor._rebuild_from_type_v2``: the plain tensor ``function(*args)`` gives
    (``function`` was itself allowed by the unpickler; the subclass is not rebuilt)."""
    if function not in (_rebuild_tensor, _rebuild_parameter):
        raise CheckpointError("a tensor subclass is rebuilt by something other than a tensor "
                              "rebuild function")
    return function(*args)


def _reconstructor(cls: Any, base: Any, state: Any = None) -> PickledObject:
    """``copyreg._reconstructor`` of protocols 0 and 1: an empty record of ``cls``."""
    if not (isinstance(cls, type) and issubclass(cls, PickledObject)):
        raise CheckpointError(f"copyreg._reconstructor of {cls!r}, not of a recorded class")
    return cls()


def _encode(text: Any, encoding: str = "latin1") -> bytes:
    """``_codecs.encode(str, "latin1")``: how protocol 2 pickles bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointError("_codecs.encode is allowed for latin1 bytes only")
    return text.encode("latin1")


def _numpy_scalar(dtype: Any, raw: Any = b"") -> Any:
    """``numpy.core.multiarray.scalar(dtype, bytes)``: the Python number it holds."""
    code = dtype.args[0] if isinstance(dtype, PickledObject) and dtype.args else None
    if code not in _NUMPY_SCALARS or not isinstance(raw, bytes):
        raise CheckpointError(f"a numpy scalar of type {code!r} is not a plain number")
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    order = ">" if len(state) > 1 and state[1] == ">" else "<"
    return struct.unpack(order + _NUMPY_SCALARS[code], raw)[0]


def _numpy_array(*args: Any) -> PickledObject:
    """``numpy.core.multiarray._reconstruct``: an inert record of the array."""
    return record_class("numpy.ndarray")(*args)


#: Functions the pickle may call, each replaced by plugdet's own code above.
_FUNCTIONS: dict[tuple[str, str], Callable[..., Any]] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("_codecs", "encode"): _encode,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_array,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_array,
}
#: Plain types the pickle may construct.
_CONTAINERS: dict[tuple[str, str], type] = {
    ("collections", "OrderedDict"): OrderedDict,
    **{("builtins", kind.__name__): kind
       for kind in (dict, list, tuple, set, frozenset, object)},
}


def _is_record_class(module: str, name: str) -> bool:
    """Whether ``module.name`` is a class (CamelCase, PEP 8) under :data:`RECORD_PREFIXES`,
    or one of numpy's ``dtype`` and ``ndarray``."""
    if module == "numpy" and name in ("dtype", "ndarray"):
        return True
    under = any(module == prefix.rstrip(".") or module.startswith(prefix)
                for prefix in RECORD_PREFIXES)
    return under and name.isidentifier() and name[0].isupper()


class _RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler with :meth:`find_class` restricted and ``BUILD`` applied to
    records only (so no ``__setstate__`` of a real class runs)."""

    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)
    stack: list[Any]  # the unpickler's own stack and protocol, set by ``load``
    proto: int

    def __init__(self, file: BinaryIO, path: Path,
                 storages: Callable[[tuple[Any, ...]], _Storage]) -> None:
        super().__init__(file, encoding="utf-8")
        self.path = path
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if self.proto < 3:  # Python 2 names, as pickle itself maps them back
            module, name = _compat_pickle.NAME_MAPPING.get(
                (module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name))
        if (module, name) in _FUNCTIONS:
            return _FUNCTIONS[(module, name)]
        if (module, name) in _CONTAINERS:
            return _CONTAINERS[(module, name)]
        if module == "torch":
            if name in _STORAGE_DTYPES:
                return _StorageType(_STORAGE_DTYPES[name])
            if name in _DTYPES:
                return _DTYPES[name]
            if name == "Size":
                return tuple
        if _is_record_class(module, name):
            return record_class(f"{module}.{name}")
        raise CheckpointError(
            f"refusing to load {self.path}: its pickle calls {module}.{name} (a checkpoint "
            "may hold tensors, plain containers and model classes only; this would run code)")

    def persistent_load(self, pid: Any) -> Any:
        kind = pid[0] if isinstance(pid, tuple) and pid else None
        if kind in ("module", b"module") and isinstance(pid[1], type) and \
                issubclass(pid[1], PickledObject):  # the legacy format's module classes
            return pid[1]
        if kind not in ("storage", b"storage"):
            raise CheckpointError(f"{self.path}: unknown persistent id {pid!r:.80}")
        return self.storages(pid)

    def _build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, PickledObject):
            target.__setstate__(state)
        elif not isinstance(target, OrderedDict):  # a state dict's ``_metadata``: dropped
            raise CheckpointError(f"refusing to load {self.path}: its pickle sets the state "
                                  f"of a {type(target).__name__}")

    dispatch[pickle.BUILD[0]] = _build


def _storage_dtype(storage_type: Any) -> torch.dtype:
    if not isinstance(storage_type, _StorageType):
        raise CheckpointError(f"unknown storage type {storage_type!r:.80}")
    return storage_type.dtype


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _load_zip(path: Path) -> Any:
    """The object of a torch zip-format file: ``<archive>/data.pkl`` and its storages
    ``<archive>/data/<key>``."""
    with zipfile.ZipFile(path) as archive:
        pickles = [name for name in archive.namelist()
                   if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointError(f"{path}: a zip file but not a torch checkpoint (no data.pkl)")
        prefix = pickles[0].rsplit("/", 1)[0]
        if f"{prefix}/byteorder" in archive.namelist() and \
                archive.read(f"{prefix}/byteorder") != b"little":
            raise CheckpointError(f"{path}: big-endian checkpoints are not supported")
        loaded: dict[str, _Storage] = {}

        def storage(pid: tuple[Any, ...]) -> _Storage:
            _, storage_type, key, _location, numel = pid
            key = str(key)
            if key not in loaded:
                dtype = _storage_dtype(storage_type)
                data = bytearray(archive.read(f"{prefix}/data/{key}"))
                if len(data) < int(numel) * _element_size(dtype):
                    raise CheckpointError(f"{path}: storage {key} is shorter than its tensors")
                loaded[key] = _Storage(dtype, data[:int(numel) * _element_size(dtype)])
            return loaded[key]

        with archive.open(pickles[0]) as file:
            return _RestrictedUnpickler(file, path, storage).load()  # type: ignore[arg-type]


def _load_legacy(path: Path) -> Any:
    """The object of a legacy-format file: magic number, protocol, system info, the object's
    pickle, the storage keys, then each storage's element count and bytes."""
    def no_storage(pid: tuple[Any, ...]) -> _Storage:
        raise CheckpointError(f"{path}: a storage outside the object's pickle")

    with open(path, "rb") as file:
        header = [_RestrictedUnpickler(file, path, no_storage).load() for _ in range(3)]
        if header[0] != LEGACY_MAGIC or header[1] != LEGACY_PROTOCOL:
            raise CheckpointError(f"{path}: not a torch checkpoint")
        if isinstance(header[2], dict) and not header[2].get("little_endian", True):
            raise CheckpointError(f"{path}: big-endian checkpoints are not supported")
        roots: dict[str, _Storage] = {}
        views: dict[str, _Storage] = {}

        def storage(pid: tuple[Any, ...]) -> _Storage:
            _, storage_type, key, _location, numel, view = pid
            key = str(key)
            if key not in roots:
                dtype = _storage_dtype(storage_type)
                roots[key] = _Storage(dtype, bytearray(int(numel) * _element_size(dtype)))
            if view is None:
                return roots[key]
            view_key, offset, view_numel = view
            views.setdefault(str(view_key), roots[key].view(int(offset), int(view_numel)))
            return views[str(view_key)]

        result = _RestrictedUnpickler(file, path, storage).load()
        for key in _RestrictedUnpickler(file, path, no_storage).load():
            root = roots[str(key)]
            (numel,) = struct.unpack("<q", file.read(8))
            if numel * _element_size(root.dtype) != len(root.data):
                raise CheckpointError(f"{path}: storage {key} has {numel} elements, "
                                      "not the size its tensors need")
            if file.readinto(memoryview(root.data)) != len(root.data):
                raise CheckpointError(f"{path}: the file ends inside storage {key}")
    return result


def load_restricted(path: str | Path) -> Any:
    """The object pickled in the torch file ``path``, read without importing or running
    anything it names (see the module docstring); tensors share the file's storages.

    :raises CheckpointError: naming the file, on a refused global or an unreadable file.
    """
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path)
        return _load_legacy(path)
    except CheckpointError:
        raise
    except Exception as exc:  # a corrupt file: truncated, bad opcodes, wrong sizes
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc


def widen_half(tensor: Tensor) -> Tensor:
    """``tensor`` with half precision (float16, bfloat16) widened to float32, exactly."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


def module_state_dict(module: PickledObject, where: str = "model") -> dict[str, Tensor]:
    """The state dict a pickled ``nn.Module`` tree would give: for each module its
    parameters, then its persistent buffers (not those in ``_non_persistent_buffers_set``),
    then its children, keys joined by dots; half precision becomes float32.

    :param where: the module's place in the file, for messages.
    :raises CheckpointError: a parameter that is not a tensor, a child that is not a module.
    """
    state: dict[str, Tensor] = {}

    def walk(record: Any, prefix: str) -> None:
        if not isinstance(record, PickledObject):
            raise CheckpointError(f"{where}.{prefix.rstrip('.')} is a "
                                  f"{type(record).__name__}, not a pickled module")
        attributes = record.attributes()
        skipped = set(attributes.get("_non_persistent_buffers_set") or ())
        tensors = [*(attributes.get("_parameters") or {}).items(),
                   *((name, value) for name, value in (attributes.get("_buffers") or {}).items()
                     if name not in skipped)]
        for name, value in tensors:
            if value is None:
                continue
            if not isinstance(value, Tensor):
                raise CheckpointError(f"{where}: {prefix}{name} is a {type(value).__name__}, "
                                      "not a tensor")
            state[prefix + name] = widen_half(value)
        for name, child in (attributes.get("_modules") or {}).items():
            if child is not None:
                walk(child, f"{prefix}{name}.")

    walk(module, "")
    return state


def plain(value: Any) -> Any:
    """``value`` with only plain data kept: str, int, float, bool, None, bytes decoded as
    latin1, and lists, tuples, sets (as lists) and dicts of them; a record with entries (a
    ``ConfigDict``) becomes its dict; tensors and other records are left out (None)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, bytes):
        return value.decode("latin1")
    if isinstance(value, PickledObject):
        return plain(value.items) if value.items else None
    if isinstance(value, dict):
        kept = {key: plain(item) for key, item in value.items()
                if isinstance(key, (str, int))}
        return {key: item for key, item in kept.items() if item is not None}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [plain(item) for item in value]
        return tuple(items) if isinstance(value, tuple) else items
    return None

