"""A ``torch.save`` file read without PyTorch: the read path's loader (``recsys recommend``, ``recsys serve``).

Both model files are ``torch.save`` zip archives of dicts, lists, numbers, strings and tensors, which the
training side reads with ``torch.load(weights_only=True)``. Importing PyTorch takes longer than answering a
request, so the commands that only read a published model use :func:`read_weights` instead: the same archive,
unpickled by a restricted unpickler that admits what ``weights_only`` admits for these files and nothing else:

* ``collections.OrderedDict`` (a state dict, a tensor's empty hook list);
* ``torch._utils._rebuild_tensor_v2`` (and ``_rebuild_tensor``), rebuilt as a numpy array from the bytes of
  ``<archive>/data/<key>``, bounds checked;
* the storage types (``torch.FloatStorage`` ...), mapped to numpy dtypes (each only as a persistent id).

Any other global (``os.system``, ``builtins.eval``, a class of the file's choosing), any other persistent
id, a big-endian archive, a storage of a dtype numpy lacks (bfloat16) or a tensor outside its storage is
refused with :class:`~recsys_assets.core.model_errors.ModelFileError`; nothing in the file runs.
Tensors come back as numpy arrays (C-contiguous copies), so the loaders convert with :func:`as_array`.
"""

import collections
import io
import os
import pickle
import sys
import zipfile

import numpy as np

from recsys_assets.core.model_errors import ModelFileError

# torch's legacy storage classes, as pickled in a persistent id, and their element types
STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _Storage:
    """One storage of the archive: its element type and its elements (read-only, from ``data/<key>``)."""

    def __init__(self, dtype: np.dtype, data: np.ndarray):
        self.dtype, self.data = dtype, data


def _rebuild_tensor(storage, offset, size, stride, *_rest) -> np.ndarray:
    """``torch._utils._rebuild_tensor_v2`` as a numpy array: a strided view of the storage, bounds checked, copied."""
    if not isinstance(storage, _Storage):
        raise ModelFileError("a tensor without a storage")
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    offset = int(offset)
    if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise ModelFileError(f"a tensor of size {size} and stride {stride} is malformed")
    if 0 in size:
        return np.zeros(size, dtype=storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if last >= len(storage.data):
        raise ModelFileError(f"a tensor of size {size} reaches beyond its storage of {len(storage.data)} elements")
    if not size:  # a scalar (as_strided reads an empty shape as "the whole storage")
        return np.array(storage.data[offset], copy=True)
    item = storage.data.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage.data[offset:], shape=size, strides=tuple(s * item for s in stride), writeable=False
    )
    return np.array(view, copy=True, order="C")  # writable, and not a view of the archive's bytes


class _Unpickler(pickle.Unpickler):
    """Only the globals in :data:`_ALLOWED`; storages from the archive's ``data/`` records."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.storages = archive, prefix, {}

    def find_class(self, module: str, name: str):
        allowed = _ALLOWED.get((module, name))
        if allowed is None:
            raise ModelFileError(f"the file asks for {module}.{name}, which a model file never holds; refused")
        return allowed

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise ModelFileError(f"a persistent id other than a storage: {str(pid)[:80]}; refused")
        _, kind, key, _location, numel = pid
        if not isinstance(kind, _StorageType) or not isinstance(key, str) or not isinstance(numel, int):
            raise ModelFileError("a malformed storage record; refused")
        if key not in self.storages:
            try:
                raw = self.archive.read(f"{self.prefix}/data/{key}")
            except KeyError:
                raise ModelFileError(f"storage {key!r} is missing from the archive") from None
            data = np.frombuffer(raw, dtype=kind.dtype)
            if len(data) < numel:
                raise ModelFileError(f"storage {key!r} holds {len(data)} elements, {numel} recorded")
            self.storages[key] = _Storage(kind.dtype, data[:numel])
        return self.storages[key]


class _StorageType:
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def __call__(self, *args):  # a storage type is only a tag: never built from the pickle
        raise ModelFileError("a storage type called as a function; refused")


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    **{("torch", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()},
}


def _prefix(archive: zipfile.ZipFile) -> str:
    """The archive's record folder (``archive`` for a buffer, the file's stem otherwise): the one holding data.pkl."""
    pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
    if len(pickles) != 1:
        raise ModelFileError("not a torch.save archive (no single <folder>/data.pkl)")
    return pickles[0].split("/", 1)[0]


def read_weights(path: str | os.PathLike) -> object:
    """The object a ``torch.save`` zip archive holds, tensors as numpy arrays; :class:`ModelFileError` for
    anything but dicts, lists, tuples, numbers, strings, None and tensors, or an archive that is not one."""
    try:
        with zipfile.ZipFile(path) as archive:
            prefix = _prefix(archive)
            names = set(archive.namelist())
            if f"{prefix}/byteorder" in names and archive.read(f"{prefix}/byteorder").strip() != b"little":
                raise ModelFileError("a big-endian archive; this reader reads little-endian files only")
            return _Unpickler(archive.read(f"{prefix}/data.pkl"), archive, prefix).load()
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError) as exc:
        raise ModelFileError(f"not a readable torch.save archive: {exc}") from None


def as_array(value) -> np.ndarray | None:
    """A tensor (PyTorch, read by ``torch.load``) or an array (read by :func:`read_weights`) as a numpy array;
    None for anything else. No PyTorch import: a tensor is recognised by its own ``numpy`` method."""
    if isinstance(value, np.ndarray):
        return value
    if type(value).__module__.startswith("torch") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    return None


def torch_in_use() -> bool:
    """Whether PyTorch is already imported (training, the assets): then the shared numeric helpers use it as
    before; on the read path it is not, and they run their numpy forms rather than import it."""
    return "torch" in sys.modules
