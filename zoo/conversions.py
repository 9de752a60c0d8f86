"""What a pinned file is, and the one place a pickle is ever read.

:func:`require_format` is the check every file entering the zoo passes (the store's
files and a model folder's): safetensors where weights are declared, anything but a
pickle where raw data is. :func:`convert_to_safetensors` is the one-time conversion of
a pinned legacy state dict (``format="torch-pickle"``): read with
``torch.load(weights_only=True)``, renamed by the pin's ``remap``, written as
safetensors; the store records it so it happens once.
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
    if kind == "safetensors" and wf.remap is None:
        return False
    if kind in ("unknown", "zip"):
        raise UnsafeFormatError(f"refused {wf.name} from {wf.source}: neither safetensors nor a torch pickle")
    from backends.state import load_state, save_state

    state = load_state(source) if kind == "safetensors" else _read_pickled_state(source, wf)
    metadata = {"zoo.converted_from": source_sha256, "zoo.name": wf.name}
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
