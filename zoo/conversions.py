"""What a pinned file is, and the one place a pickle is ever read.

:func:`require_format` is the check every file entering the zoo passes (the store's
files and a model folder's): safetensors where weights are declared, anything but a
pickle where raw data is. :func:`convert_to_safetensors` is the one-time conversion of
a pinned legacy state dict (``format="torch-pickle"``): read with
``torch.load(weights_only=True)``, renamed by the pin's ``remap``, written as
safetensors; the store records it so it happens once. A full PyTorch Lightning
checkpoint (``format="lightning-pickle"``: a ``torch.save`` zip pickling the module's
classes, its hyper-parameters and metrics) is read by :func:`read_lightning_checkpoint`,
a restricted unpickler that imports nothing and runs no code: tensors are rebuilt from
the archive's storages, every other class becomes an inert :class:`PickledRecord`.
"""
from __future__ import annotations

from pathlib import Path

from zoo.errors import InputError, UnsafeFormatError
from zoo.registry import WeightFile

_KIND_WORDS = {
    "pickle": "a Python pickle",
    "torch-zip": "a torch.save zip archive (pickle inside)",
    "zip": "a zip archive",
    "unknown": "not a recognised weights format",
    "safetensors": "safetensors",
}


def sniff(path: Path) -> str:
    """``"safetensors"``, ``"pickle"``, ``"torch-zip"`` (a zip holding a pickle), ``"zip"`` (another zip:
    an ``.npz``) or ``"unknown"``, from the first bytes and, for a zip, its member names."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9:
        header_len = int.from_bytes(head[:8], "little")
        if head[8:9] == b"{" and 2 <= header_len <= size - 8:
            return "safetensors"
    if head[:1] == b"\x80":
        return "pickle"
    if head[:4] == b"PK\x03\x04":
        return "zip" if _zip_without_pickle(path) else "torch-zip"
    return "unknown"


def _zip_without_pickle(path: Path) -> bool:
    """Whether a zip archive is readable and names no pickle (torch.save writes ``*/data.pkl``)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return not any(name.endswith(".pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):  # unreadable: treat it as the worst case
        return False


def require_format(path: Path, wf: WeightFile, origin: str) -> None:
    """Safetensors for ``format="safetensors"``; anything but a pickle for ``format="raw"``."""
    kind = sniff(path)
    if wf.format == "raw":
        if kind in ("pickle", "torch-zip"):
            raise UnsafeFormatError(
                f"refused {wf.name} from {origin}: it is {_KIND_WORDS[kind]}, declared as a raw data file; "
                "the zoo never unpickles files"
            )
    elif kind != "safetensors":
        raise UnsafeFormatError(
            f"refused {wf.name} from {origin}: it is {_KIND_WORDS[kind]}, not safetensors. Pickle can execute "
            f"code when loaded, so the zoo never unpickles it; convert it to safetensors, or declare the "
            f"WeightFile with format='torch-pickle' if it is a trusted legacy state dict"
        )


def convert_to_safetensors(source: Path, wf: WeightFile, source_sha256: str, out: Path) -> bool:
    """Write ``source`` (a pinned legacy pickle, or safetensors to remap) to ``out`` as safetensors.

    Returns False, writing nothing, when ``source`` is safetensors already and there is no remap.
    """
    kind = sniff(source)
    if wf.format == "lightning-pickle" and kind != "torch-zip":
        raise UnsafeFormatError(f"refused {wf.name} from {wf.source}: expected a torch.save zip archive "
                                f"(a Lightning checkpoint), got {_KIND_WORDS[kind]}")
    if kind == "safetensors" and wf.remap is None:
        return False
    if kind in ("unknown", "zip"):
        raise UnsafeFormatError(f"refused {wf.name} from {wf.source}: neither safetensors nor a torch pickle")
    from backends.state import load_state, save_state

    metadata = {"zoo.converted_from": source_sha256, "zoo.name": wf.name}
    if wf.format == "lightning-pickle":
        state, extras = _read_lightning_state(source, wf)
        metadata.update(extras)
    else:
        state = load_state(source) if kind == "safetensors" else _read_pickled_state(source, wf)
    if wf.remap is not None:
        state = _remapped(state, wf)
        metadata["zoo.remap"] = wf.remap
    save_state(state, out, metadata=metadata)
    return True


def _read_pickled_state(path: Path, wf: WeightFile) -> dict:
    """A legacy state dict through ``torch.load(weights_only=True)`` (tensors and plain containers only)."""
    import pickle

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses anything but tensors and plain containers.
        raise UnsafeFormatError(f"refused {wf.name}: torch.load(weights_only=True) rejected it: {e}") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise InputError(f"{wf.name} from {wf.source} is not a readable checkpoint ({type(e).__name__}: {e})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    _require_state(obj, wf, "expected a state dict of tensors (or one under 'state_dict'/'model')")
    return obj


def _remapped(state: dict, wf: WeightFile) -> dict:
    """``state`` passed through the pin's ``remap`` function (keys renamed for the architecture)."""
    from zoo.registry import resolve_ref

    try:
        out = resolve_ref(wf.remap)(state)
    except (ImportError, AttributeError, KeyError, ValueError) as e:
        raise InputError(f"{wf.name}: key remap {wf.remap!r} failed: {type(e).__name__}: {e}") from None
    _require_state(out, wf, f"key remap {wf.remap!r} must return a state dict of tensors")
    return out


def _require_state(obj, wf: WeightFile, expected: str) -> None:
    import torch

    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{wf.name}: {expected}, got {type(obj).__name__}")


# -- Lightning checkpoints: a restricted unpickler ----------------------------------
_STORAGE_DTYPES = {"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
                   "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
                   "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool"}
MAX_PICKLE_BYTES = 64 << 20


class PickledRecord:
    """What an unknown class or function of a pickle becomes: its name, and whatever the pickle fed it, inert.

    Calling the record's class (pickle's REDUCE/NEWOBJ) stores the arguments; nothing is imported or run.
    """

    qualname = "?"

    def __new__(cls, *args, **kwargs):  # NEWOBJ calls __new__ alone: set everything here
        record = object.__new__(cls)
        record.args, record.kwargs, record.state, record.items, record.list = args, kwargs, None, {}, []
        return record

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):  # a dict subclass (Lightning's AttributeDict) is filled by SETITEMS
        self.items[key] = value

    def append(self, value):  # a list subclass is filled by APPENDS
        self.list.append(value)

    def extend(self, values):
        self.list.extend(values)

    def __repr__(self):
        return f"<record {self.qualname}>"


def _record_class(module: str, name: str) -> type:
    return type(name, (PickledRecord,), {"qualname": f"{module}.{name}", "__module__": "zoo.conversions.records"})


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    """``torch._utils._rebuild_tensor_v2`` done here: a strided view of the storage, copied out."""
    import torch

    if not isinstance(storage, torch.Tensor):
        raise InputError(f"a tensor in the checkpoint names no storage (got {type(storage).__name__})")
    return torch.as_strided(storage, tuple(size), tuple(stride), int(offset)).clone(memory_format=torch.contiguous_format)


def _restricted_unpickler(archive, prefix: str, data, origin: str):
    """A ``pickle.Unpickler`` over ``data`` that rebuilds tensors from ``archive`` and records everything else."""
    import collections
    import io
    import pickle

    import torch

    class Restricted(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return _rebuild_tensor
            if (module, name) == ("torch._utils", "_rebuild_parameter"):  # (data, requires_grad, hooks): the data
                return lambda data, *rest: data
            if (module, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            if module in ("builtins", "__builtin__") and name in ("set", "frozenset"):
                return {"set": set, "frozenset": frozenset}[name]
            if module == "torch" and name in _STORAGE_DTYPES:
                return getattr(torch, _STORAGE_DTYPES[name])  # a dtype: the storage's element type
            return _record_class(module, name)

        def persistent_load(self, pid):
            if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                    and isinstance(pid[1], torch.dtype)):
                raise InputError(f"{origin}: unexpected persistent id {str(pid)[:80]!r} (expected a torch storage)")
            dtype, key, numel = pid[1], str(pid[2]), int(pid[4])
            try:
                raw = archive.read(f"{prefix}data/{key}")
            except KeyError:
                raise InputError(f"{origin}: storage {key!r} is missing from the archive") from None
            itemsize = torch.empty(0, dtype=dtype).element_size()
            if len(raw) != numel * itemsize:
                raise InputError(f"{origin}: storage {key!r} holds {len(raw)} bytes, expected {numel * itemsize}")
            return torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)

    return Restricted(io.BytesIO(data))


def read_lightning_checkpoint(path: Path, origin: str | None = None) -> dict:
    """The pickled object of a ``torch.save`` zip (a Lightning checkpoint), read without running its code.

    Tensors come back as tensors, dicts and lists as such, every class or function the pickle names
    (modules, metrics, ``os.system``) as an inert :class:`PickledRecord`. An InputError when the archive
    is unreadable or its pickle malformed.
    """
    import pickle
    import zipfile

    origin = origin or str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise InputError(f"{origin}: expected one */data.pkl in the torch.save archive, found {len(pickles)}")
            info = archive.getinfo(pickles[0])
            if info.file_size > MAX_PICKLE_BYTES:
                raise InputError(f"{origin}: data.pkl is {info.file_size} bytes, over {MAX_PICKLE_BYTES}")
            prefix = pickles[0][: -len("data.pkl")]
            return _restricted_unpickler(archive, prefix, archive.read(info), origin).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, RuntimeError, OverflowError) as e:
        raise InputError(f"{origin} is not a readable torch.save checkpoint ({type(e).__name__}: {e})") from None


def plain(obj, depth: int = 0):
    """``obj`` as JSON-able data: records become ``{"class", "args", "state", "items"}``; tensors become lists."""
    import torch

    if depth > 50:
        raise InputError("checkpoint hyper-parameters nest deeper than 50 levels")
    if isinstance(obj, PickledRecord):
        out = {"class": obj.qualname}
        for key in ("args", "kwargs", "state", "items", "list"):
            value = getattr(obj, key)
            if value:
                out[key] = plain(value, depth + 1)
        return out
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, type) and issubclass(obj, PickledRecord):
        return {"class": obj.qualname}
    if isinstance(obj, dict):
        return {str(k): plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [plain(v, depth + 1) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)


def _read_lightning_state(path: Path, wf: WeightFile) -> tuple[dict, dict[str, str]]:
    """A Lightning checkpoint's ``state_dict`` (remapped later) and, as safetensors metadata, its
    ``hyper_parameters`` and any other top-level entries as plain JSON."""
    import json

    checkpoint = read_lightning_checkpoint(path, f"{wf.name} from {wf.source}")
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise InputError(f"{wf.name}: expected a Lightning checkpoint (a dict with 'state_dict'), "
                         f"got {type(checkpoint).__name__}")
    state = dict(checkpoint["state_dict"])
    _require_state(state, wf, "expected the checkpoint's 'state_dict' to hold tensors only")
    extras = {f"zoo.lightning.{key}": json.dumps(plain(value)) for key, value in checkpoint.items()
              if key != "state_dict"}
    return state, extras
